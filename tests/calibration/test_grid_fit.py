"""The grid, the power-law fit and the k lists on synthetic traces (known answers, no model)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sss.calibration.fit import epsilon_equivalent, expected_accuracy, fit_power_law, k_list, k_lists
from sss.calibration.grid import build_grid, c_hat_matrix
from sss.calibration.traces import steps_from_table, to_table

from synthetic import random_steps, steps_from


def test_known_c_hat_per_bin():
    # bin 5 (p_max 0.45): 60 gold at rank 1, 30 at rank 2, 10 at rank 3;
    # bin 9 (p_max 0.85): 45 at rank 1, 5 at rank 4
    p_max = [0.45] * 100 + [0.85] * 50
    ranks = [1] * 60 + [2] * 30 + [3] * 10 + [1] * 45 + [4] * 5
    grid = build_grid(to_table(steps_from(p_max, ranks)), bins=10)
    c = c_hat_matrix(grid)
    assert c.shape == (10, 5)
    np.testing.assert_allclose(c[4], [0.6, 0.3, 0.1, 0, 0])
    np.testing.assert_allclose(c[8], [0.9, 0, 0, 0.1, 0])
    assert c[[0, 1, 2, 3, 5, 6, 7, 9]].sum() == 0
    steps = grid.groupby("bin")["steps"].first()
    assert steps[5] == 100 and steps[9] == 50 and steps.sum() == 150
    assert grid.groupby("bin")["token_share"].first()[5] == pytest.approx(100 / 150)
    # rank-r probability is p_max / 2**(r-1) in every step: mean exact, spread zero
    row = grid[(grid["bin"] == 5) & (grid["rank"] == 3)].iloc[0]
    assert row["p_mean"] == pytest.approx(np.float32(0.45) / 4, rel=1e-6)
    assert row["p_std"] == pytest.approx(0, abs=1e-7)
    assert row["p_cond_mean"] == pytest.approx(np.float32(0.45) / 4, rel=1e-6)
    assert math.isnan(grid[(grid["bin"] == 5) & (grid["rank"] == 4)].iloc[0]["p_cond_mean"])


def reference_grid(steps, bins: int) -> pd.DataFrame:
    """The grid by plain pandas groupby, bins by math.ceil: an independent computation."""
    k = steps.top_probs.shape[1]
    rows = []
    b = np.array([min(max(math.ceil(float(p) * bins), 1), bins) for p in steps.p_max.astype(np.float64)])
    for m in range(1, bins + 1):
        inside = b == m
        top = steps.top_probs[inside].astype(np.float64)
        for r in range(1, k + 1):
            gold = steps.rank[inside] == r
            cond = top[gold, r - 1] if inside.any() else np.array([])
            rows.append(
                {
                    "bin": m,
                    "rank": r,
                    "steps": int(inside.sum()),
                    "c_hat": gold.mean() if inside.any() else 0.0,
                    "p_mean": top[:, r - 1].mean() if inside.any() else np.nan,
                    "p_std": top[:, r - 1].std() if inside.any() else np.nan,
                    "p_cond_mean": cond.mean() if len(cond) else np.nan,
                    "p_cond_std": cond.std() if len(cond) else np.nan,
                }
            )
    return pd.DataFrame(rows)


def test_streamed_grid_matches_a_plain_groupby(tmp_path):
    from sss.calibration.traces import write_traces

    steps = random_steps(5000, k=8, seed=3)
    write_traces(steps, tmp_path / "traces.parquet")
    # small batches: the sums must carry across record batches
    grid = build_grid(tmp_path / "traces.parquet", bins=10, batch_rows=777)
    ref = reference_grid(steps, 10)
    for column in ("steps", "c_hat", "p_mean", "p_std", "p_cond_mean", "p_cond_std"):
        # sums of squares are taken in float32 within blocks of rows: stds to ~1e-6
        atol = 1e-5 if column.endswith("std") else 1e-7
        np.testing.assert_allclose(
            grid[column].to_numpy(float),
            ref[column].to_numpy(float),
            rtol=1e-6,
            atol=atol,
            equal_nan=True,
            err_msg=column,
        )
    # ranks beyond K count as steps of the bin but in no cell
    assert (steps.rank > 8).any()
    per_bin = grid.groupby("bin")["c_hat"].sum()
    assert (per_bin <= 1 + 1e-12).all() and (per_bin < 1).any()


def test_grid_over_fewer_ranks_than_traced():
    steps = random_steps(2000, k=8, seed=1)
    full, head = build_grid(to_table(steps), 10), build_grid(to_table(steps), 10, top_k=3)
    head, sub = head.reset_index(drop=True), full[full["rank"] <= 3].reset_index(drop=True)
    # p_std is sqrt(E[p^2] - E[p]^2) from float32 BLAS block sums, whose order depends on the
    # matrix width (3 or 8 ranks) and the CPU's kernels; the cancellation turns their 1e-7 into
    # ~1e-4 relative (5.6e-5 seen on a CI machine), so that column is compared to 1e-3
    rest = [c for c in head.columns if c != "p_std"]
    pd.testing.assert_frame_equal(head[rest], sub[rest])
    np.testing.assert_allclose(head["p_std"], sub["p_std"], rtol=1e-3)
    with pytest.raises(ValueError, match="top_k"):
        build_grid(to_table(steps), 10, top_k=9)


def test_bin_edges_follow_the_samplers_bins():
    # p_max exactly 0.3 (float64) is in bin 3 = (0.2, 0.3]; 1.0 in bin 10; 0.1 + tiny in bin 2
    steps = steps_from([0.3, 1.0, 0.1000001, 0.1], [1, 1, 1, 1], dtype=np.float64)
    table = to_table(steps)
    import pyarrow as pa

    table = table.set_column(
        table.schema.get_field_index("p_max"), "p_max", pa.array(np.array([0.3, 1.0, 0.1000001, 0.1]))
    )
    counts = build_grid(table, 10).groupby("bin")["steps"].first()
    assert counts[3] == 1 and counts[10] == 1 and counts[2] == 1 and counts[1] == 1
    assert counts.sum() == 4
    # traces store float32, where the nearest value to 0.3 is above it: bin 4, as at decoding
    import torch

    from sss.samplers.bins import confidence_bin

    f32 = build_grid(to_table(steps_from([0.3], [1])), 10).groupby("bin")["steps"].first()
    assert f32[4] == 1
    assert int(confidence_bin(torch.tensor([0.3], dtype=torch.float32), 10)) == 4


def test_traces_table_round_trip():
    steps = random_steps(300, k=6)
    back = steps_from_table(to_table(steps))
    for name in ("doc_id", "position", "token_id", "rank", "prob", "p_max", "top_ids", "top_probs"):
        np.testing.assert_array_equal(getattr(back, name), getattr(steps, name))


def grid_from_law(a: float, b: float, noise: float = 0.0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for m in range(1, 11):
        for r in range(1, 21):
            p = (m / 10) * 0.6 ** (r - 1)
            c = 10 ** (a + b * math.log10(p) + noise * rng.standard_normal())
            rows.append({"bin": m, "rank": r, "steps": 100, "token_share": 0.1, "c_hat": c, "p_mean": p})
    rows[0]["c_hat"] = 0.0  # cells with c_hat = 0 are left out of the fit
    return pd.DataFrame(rows)


def test_fit_recovers_a_and_b_exactly():
    fit = fit_power_law(grid_from_law(-0.506, 0.795))
    assert fit["a"] == pytest.approx(-0.506, abs=1e-10)
    assert fit["b"] == pytest.approx(0.795, abs=1e-10)
    assert fit["r2"] == pytest.approx(1.0) and fit["rmse"] == pytest.approx(0, abs=1e-10)
    assert fit["n_cells"] == 199 and fit["log_base"] == 10
    # the natural-log form of the same line: ln c = a ln10 + b ln p
    assert fit["natural_log"]["a"] == pytest.approx(-0.506 * math.log(10))
    assert fit["natural_log"]["b"] == pytest.approx(0.795)


def test_noisy_fit_matches_polyfit_and_is_close_to_the_truth():
    grid = grid_from_law(-1.2, 0.55, noise=0.1, seed=5)
    fit = fit_power_law(grid)
    cells = grid[grid["c_hat"] > 0]
    b, a = np.polyfit(np.log10(cells["p_mean"]), np.log10(cells["c_hat"]), 1)
    assert (fit["a"], fit["b"]) == (pytest.approx(a), pytest.approx(b))
    assert abs(fit["a"] + 1.2) < 0.05 and abs(fit["b"] - 0.55) < 0.02
    assert 0.9 < fit["r2"] < 1 and fit["rmse"] == pytest.approx(0.1, rel=0.2)


def test_no_fit_from_fewer_than_two_points():
    grid = grid_from_law(-0.5, 0.8)
    grid.loc[grid.index[2:], "c_hat"] = 0.0
    assert fit_power_law(grid) is None  # only one cell left with c_hat > 0


def test_epsilon_equivalent_of_the_paper_fit():
    fit = {"a": -0.506, "b": 0.795}
    # PAPER.md: c = 0.05 -> 0.100, c = 0.03 -> 0.053, c = 0.10 -> 0.239
    assert epsilon_equivalent(fit, 0.05) == pytest.approx(0.100, abs=1e-3)
    assert epsilon_equivalent(fit, 0.03) == pytest.approx(0.053, abs=1e-3)
    assert epsilon_equivalent(fit, 0.10) == pytest.approx(0.239, abs=1e-3)


C_HAT = np.array(
    [
        [0.50, 0.02, 0.06, 0.01],  # bin 1: 5 steps, under min_support 10 -> always k = 1
        [0.40, 0.05, 0.01, 0.05],  # bin 2: not monotone; 0.05 met at ranks 2 and 4
        [0.90, 0.04, 0.00, 0.00],  # bin 3
    ]
)
STEPS = np.array([5, 100, 100])


@pytest.mark.parametrize(
    "threshold, expected",
    [
        (0.05, [1, 4, 1]),  # the last rank reaching c (>=), gaps kept: the kept set is a prefix
        (0.06, [1, 1, 1]),
        (0.04, [1, 4, 2]),
        (0.01, [1, 4, 2]),
        (0.001, [1, 4, 2]),  # zeros never reach a positive threshold
        (0.95, [1, 1, 1]),  # nothing reaches c: k = 1 (greedy)
    ],
)
def test_k_lists_hand_worked(threshold, expected):
    assert k_list(C_HAT, STEPS, threshold, min_support=10) == expected


def test_min_support_zero_keeps_small_bins():
    assert k_list(C_HAT, STEPS, 0.05, min_support=0) == [3, 4, 1]


def test_k_lists_and_expected_accuracy_from_a_grid():
    rows = [
        {"bin": m + 1, "rank": r + 1, "steps": int(STEPS[m]), "c_hat": C_HAT[m, r], "p_mean": 0.5 ** (r + 1)}
        for m in range(3)
        for r in range(4)
    ]
    grid = pd.DataFrame(rows)
    assert k_lists(grid, [0.05, 0.1], 10) == {"0.05": [1, 4, 1], "0.1": [1, 1, 1]}
    expected = [sum(C_HAT[m, r] * 0.5 ** (r + 1) for r in range(4)) for m in range(3)]
    assert expected_accuracy(grid) == pytest.approx(expected)
