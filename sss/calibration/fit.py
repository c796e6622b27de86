"""The power law log10 c_hat = A + B log10 p_mean over grid cells, and per-bin k lists.

The fit is ordinary least squares over every cell with c_hat > 0 and p_mean > 0 (p_mean the
unconditional mean probability of the rank-r token in the bin, as in the paper). The samplers
read A and B in base 10 (`10**A * p**B >= c`); the natural-log fit (ln c = A ln10 + B ln p) is
reported beside it, labelled, for comparison with fits made with `np.log`.

k lists (Calibrated-TopK, SAMPLERS.md): for threshold c, bin m's k is the largest rank r with
c_hat[m, r] >= c; 1 when no rank reaches c, and 1 for a bin with fewer than `min_support` steps.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .grid import bin_steps, c_hat_matrix

DEFAULT_THRESHOLDS = (0.01, 0.03, 0.05, 0.07, 0.09, 0.10)


def fit_power_law(grid: pd.DataFrame) -> dict[str, Any] | None:
    """A, B (log10), R2, RMSE (in log10 units), cells; None with fewer than two distinct points."""
    cells = grid[(grid["c_hat"] > 0) & (grid["p_mean"] > 0)]
    x = np.log10(cells["p_mean"].to_numpy(np.float64))
    y = np.log10(cells["c_hat"].to_numpy(np.float64))
    if len(x) < 2 or np.ptp(x) == 0:
        return None
    design = np.column_stack([np.ones_like(x), x])
    (a, b), *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - (a + b * x)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    rmse = float(np.sqrt((residual**2).mean()))
    return {
        "log_base": 10,
        "a": float(a),
        "b": float(b),
        "r2": 1.0 - float((residual**2).sum()) / ss_tot if ss_tot > 0 else 1.0,
        "rmse": rmse,
        "n_cells": int(len(x)),
        "x": "log10 of p_mean (unconditional mean probability of the rank-r token in the bin)",
        "y": "log10 of c_hat (share of the bin's steps whose gold token has rank r)",
        "natural_log": {
            "a": float(a) * math.log(10),
            "b": float(b),
            "rmse": rmse * math.log(10),
            "note": "the same fit as ln c = a + b ln p; samplers take the log10 a",
        },
    }


def epsilon_equivalent(fit: dict[str, Any], c: float) -> float | None:
    """The epsilon-sampling threshold that Calibrated-epsilon with this fit and c amounts to (B > 0)."""
    if fit is None or fit["b"] <= 0:
        return None
    try:
        return 10.0 ** ((math.log10(c) - fit["a"]) / fit["b"])
    except (OverflowError, ValueError):
        return None


def k_list(c_hat: np.ndarray, steps: np.ndarray, threshold: float, min_support: int) -> list[int]:
    """One k per bin, bin 1 first (c_hat [bins, K])."""
    ranks = np.arange(1, c_hat.shape[1] + 1)
    reaching = np.where(c_hat >= threshold, ranks, 0).max(axis=1)  # 0: no rank reaches c
    ks = np.maximum(reaching, 1)
    ks[steps < min_support] = 1
    return [int(k) for k in ks]


def k_lists(grid: pd.DataFrame, thresholds, min_support: int) -> dict[str, list[int]]:
    c_hat, steps = c_hat_matrix(grid), bin_steps(grid)
    return {threshold_key(t): k_list(c_hat, steps, t, min_support) for t in thresholds}


def threshold_key(threshold: float) -> str:
    return f"{float(threshold):g}"


def expected_accuracy(grid: pd.DataFrame) -> list[float]:
    """Per bin, sum over ranks of p_mean * c_hat (the paper's C_m), bin 1 first; NaN for empty bins."""
    product = (grid["p_mean"] * grid["c_hat"]).groupby(grid["bin"]).sum(min_count=1)
    return [float(v) for v in product.to_numpy()]
