"""The confidence-bin ablation figure (sweep=confidence_bins) over a sweep directory, and the
schematic of which tokens each rule keeps (python -m sss.analysis.schematic)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT
from trace_runs import Sample, make_trace_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def bin_runs(root, bins=(2, 5, 8), seeds=(0, 1), docs=6, repeats=8):
    """Confidence-bin runs with random answers; returns {(bin, seed): samples frame}."""
    rng = np.random.default_rng(3)
    out = {}
    for m in bins:
        for seed in seeds:
            samples = [
                Sample(
                    d, r, str(rng.choice(["1", "2", "3", "[invalid]"], p=[0.4, 0.3, 0.2, 0.1])), False, [(0.9, 1, 0.9)]
                )
                for d in range(docs)
                for r in range(repeats)
            ]
            for s in samples:
                s.correct = s.answer == "1"
            run = make_trace_run(
                root / f"m{m}s{seed}",
                samples,
                sampler="confidence_bin",
                params={"confidence_bin": m},
                seed=seed,
                tokens=False,
            )
            out[(m, seed)] = pd.read_parquet(run / "samples.parquet")
    return out


def test_confidence_bin_curves_match_the_metrics(tmp_path):
    from sss.analysis.confidence_bins import confidence_bin_table
    from sss.analysis.table import runs_table
    from sss.evaluation.metrics import per_question, summarize
    from sss.runs.discovery import find_runs

    runs = bin_runs(tmp_path)
    make_trace_run(tmp_path / "other", [Sample(0, 0, "1", True, [(0.9, 1, 0.9)])])  # not a bin run
    table = confidence_bin_table(runs_table(find_runs(tmp_path))[lambda f: f["status"] == "done"])
    assert sorted(table["confidence_bin"].unique()) == [2, 5, 8]
    assert sorted(table["k"].unique()) == [1, 2, 4, 8] and (table["seeds"] == 2).all()
    for (m, k), row in table.set_index(["confidence_bin", "k"]).iterrows():
        # maj@k: sss.evaluation.metrics over the first k repeats, averaged over the two seeds
        expected = np.mean([summarize(runs[(m, s)])[f"maj@{k}"] for s in (0, 1)])
        assert row["maj_at_k"] == pytest.approx(expected)
        unique = np.mean(
            [per_question(runs[(m, s)][runs[(m, s)]["repeat"] < k])["unique_answers"].mean() for s in (0, 1)]
        )
        assert row["unique_answers"] == pytest.approx(unique)


def test_analyze_draws_the_confidence_bin_figure(tmp_path):
    bin_runs(tmp_path / "outputs")
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    result = subprocess.run(
        [sys.executable, str(ROOT / "launch.py"), "job=analyze", f"analyze.input={tmp_path / 'outputs'}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "outputs" / "analysis"
    figure = out / "figures" / "confidence_bins__arith__tiny.png"
    assert figure.read_bytes()[:8] == PNG_MAGIC
    assert "(figures/confidence_bins__arith__tiny.png)" in (out / "report.md").read_text()
    assert len(pd.read_csv(out / "confidence_bins.csv")) == 3 * 4


def test_schematic_kept_sets_come_from_the_rules(tmp_path):
    from sss.analysis.schematic import kept_probabilities, rule_specs, zipf_logits

    p_max = np.array([0.1, 0.25, 0.35, 0.6, 0.9])
    logits = zipf_logits(p_max, 500)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    np.testing.assert_allclose(probs.max(1), p_max, rtol=1e-6)

    specs = rule_specs(("greedy_threshold", "top_k", "min_p", "confidence_bin"))
    kept = {rule: ~np.isnan(kept_probabilities(spec, logits, 30)) for rule, spec in specs.items()}
    # greedy_threshold 0.3: only the argmax below p_max 0.3, every token above
    assert kept["greedy_threshold"][:, :2].sum(0).tolist() == [1, 1]
    assert kept["greedy_threshold"][:, 2:].all()
    assert kept["top_k"].sum(0).tolist() == [20] * 5
    # min_p 0.1: p >= 0.1 * p_max
    np.testing.assert_array_equal(kept["min_p"], (probs[:, :30] >= 0.1 * p_max[:, None] - 1e-7).T)
    # confidence_bin 5 of 10: all kept only where p_max is in (0.4, 0.5]; none of these is
    assert kept["confidence_bin"].sum(0).tolist() == [1] * 5

    env = dict(os.environ)
    out = tmp_path / "schematic.png"
    result = subprocess.run(
        [sys.executable, "-m", "sss.analysis.schematic", "--out", str(out), "--columns", "12", "--ranks", "10"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert out.read_bytes()[:8] == PNG_MAGIC


def test_confidence_bins_with_other_bin_counts(tmp_path):
    """sampler.bins=5 names the sampler "confidence_bin+bins" and keeps its own curves."""
    from sss.analysis.confidence_bins import confidence_bin_figures, confidence_bin_table
    from sss.analysis.table import runs_table
    from sss.runs.discovery import find_runs

    for m in (1, 3):
        samples = [
            Sample(d, r, str((d + r * m) % 3), (d + r * m) % 3 == 0, [(0.9, 1, 0.9)])
            for d in range(3)
            for r in range(4)
        ]
        make_trace_run(
            tmp_path / f"five{m}",
            samples,
            sampler="confidence_bin+bins",
            params={"confidence_bin": m, "bins": 5},
            tokens=False,
        )
    make_trace_run(tmp_path / "ten", samples, sampler="confidence_bin", params={"confidence_bin": 2}, tokens=False)
    table = confidence_bin_table(runs_table(find_runs(tmp_path)))
    assert sorted(map(tuple, table[["bins", "confidence_bin"]].drop_duplicates().to_numpy())) == [
        (5, 1),
        (5, 3),
        (10, 2),
    ]
    figures = confidence_bin_figures(table, tmp_path)  # one figure: bins=10 has a single bin
    assert [p.name for p in figures] == ["confidence_bins-5__arith__tiny.png"]
