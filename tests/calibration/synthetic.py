"""Synthetic traced steps for calibration tests (no model)."""

from __future__ import annotations

import numpy as np

from sss.calibration.stats import StepColumns


def steps_from(p_max, ranks, top_probs=None, k: int = 5, dtype=np.float32) -> StepColumns:
    """Steps with the given p_max and gold ranks; top_probs default: p_max, then halving."""
    p_max = np.asarray(p_max, dtype=dtype)
    ranks = np.asarray(ranks, dtype=np.int32)
    n = len(p_max)
    if top_probs is None:
        top_probs = p_max[:, None] * (0.5 ** np.arange(k))[None, :]
    top_probs = np.asarray(top_probs, dtype=np.float32)
    k = top_probs.shape[1]
    gold_p = np.where(ranks <= k, top_probs[np.arange(n), np.minimum(ranks, k) - 1], 1e-6)
    return StepColumns(
        doc_id=np.arange(n, dtype=np.int64) // 7,
        position=np.arange(n, dtype=np.int32) % 7,
        token_id=np.arange(n, dtype=np.int32),
        rank=ranks,
        prob=gold_p.astype(np.float32),
        p_max=p_max,
        top_ids=np.tile(np.arange(k, dtype=np.int32), (n, 1)),
        top_probs=top_probs,
    )


def random_steps(n: int, k: int = 8, seed: int = 0) -> StepColumns:
    """Random sorted distributions (Dirichlet) and gold ranks drawn from them (some beyond K)."""
    rng = np.random.default_rng(seed)
    probs = -np.sort(-rng.dirichlet(np.full(k + 4, 0.3), size=n), axis=1)
    u = rng.random(n)[:, None]
    ranks = (u > np.cumsum(probs, axis=1)).sum(axis=1) + 1
    ranks = np.minimum(ranks, k + 4).astype(np.int32)
    top = probs[:, :k].astype(np.float32)
    return steps_from(top[:, 0], ranks, top_probs=top)
