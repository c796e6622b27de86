"""The confidence x rank grid, streamed over traces.parquet in record batches (numpy, vectorised).

Bins are `sss.samplers.bins.confidence_bin` over p_max: bin m = ((m-1)/n, m/n], the function the
samplers call at decoding time. Per (bin m, rank r), r = 1..K:
- steps: traced steps in bin m; token_share: steps / all steps;
- gold_at_rank, c_hat: steps of the bin whose gold token has rank r, and their share of the bin;
- p_mean, p_std: probability of the rank-r token over all steps of the bin (unconditional: the
  p-hat of the paper's power law);
- p_cond_mean, p_cond_std: the same over the bin's steps whose gold has rank r (NaN when none).
Standard deviations are population ones (ddof 0).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .traces import top_matrix

BATCH_ROWS = 1 << 19
BLOCK_ROWS = 1 << 15


def bin_index(p_max: np.ndarray, bins: int) -> np.ndarray:
    """0-based bin of each p_max, through the samplers' own function (in the column's dtype)."""
    import torch

    from sss.samplers.bins import confidence_bin

    # a copy: arrow buffers are read-only, and torch wants writable memory
    return confidence_bin(torch.from_numpy(np.array(p_max)), bins).numpy() - 1


class GridAccumulator:
    """Sums over batches of steps; `frame()` turns them into the grid."""

    def __init__(self, bins: int, top_k: int):
        self.bins, self.k = bins, top_k
        shape = (bins, top_k)
        self.steps = np.zeros(bins, np.int64)
        self.gold = np.zeros(shape, np.int64)
        self.p_sum, self.p_sq = np.zeros(shape), np.zeros(shape)
        self.c_sum, self.c_sq = np.zeros(shape), np.zeros(shape)

    def add(self, p_max: np.ndarray, rank: np.ndarray, top_probs: np.ndarray) -> None:
        n, k = self.bins, self.k
        b = bin_index(p_max, n)
        self.steps += np.bincount(b, minlength=n)
        top = np.ascontiguousarray(top_probs[:, :k], dtype=np.float32)
        # per-bin sums of every rank's probability as a matrix product with the bins' one-hot
        # matrix (BLAS, contiguous) instead of K strided bincounts; float32 within a block of
        # rows small enough to stay in cache, float64 across blocks
        for start in range(0, len(b), BLOCK_ROWS):
            block, bb = top[start : start + BLOCK_ROWS], b[start : start + BLOCK_ROWS]
            onehot = np.zeros((len(bb), n), np.float32)
            onehot[np.arange(len(bb)), bb] = 1.0
            self.p_sum += onehot.T @ block
            self.p_sq += onehot.T @ np.square(block)
        inside = (rank >= 1) & (rank <= k)
        cell = b[inside] * k + (rank[inside] - 1)
        gold_p = top[inside, rank[inside] - 1].astype(np.float64)
        self.gold += np.bincount(cell, minlength=n * k).reshape(n, k)
        self.c_sum += np.bincount(cell, weights=gold_p, minlength=n * k).reshape(n, k)
        self.c_sq += np.bincount(cell, weights=gold_p * gold_p, minlength=n * k).reshape(n, k)

    def frame(self) -> pd.DataFrame:
        n, k = self.bins, self.k
        steps = self.steps[:, None].astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            c_hat = np.where(steps > 0, self.gold / steps, 0.0)
            p_mean = np.where(steps > 0, self.p_sum / steps, np.nan)
            p_std = np.sqrt(np.maximum(self.p_sq / steps - p_mean**2, 0.0))
            cond_mean = np.where(self.gold > 0, self.c_sum / self.gold, np.nan)
            cond_std = np.sqrt(np.maximum(self.c_sq / self.gold - cond_mean**2, 0.0))
        total = max(int(self.steps.sum()), 1)
        m = np.repeat(np.arange(1, n + 1), k)
        return pd.DataFrame(
            {
                "bin": m,
                "bin_low": (m - 1) / n,
                "bin_high": m / n,
                "rank": np.tile(np.arange(1, k + 1), n),
                "steps": np.repeat(self.steps, k),
                "token_share": np.repeat(self.steps / total, k),
                "gold_at_rank": self.gold.reshape(-1),
                "c_hat": c_hat.reshape(-1),
                "p_mean": p_mean.reshape(-1),
                "p_std": np.where(steps > 0, p_std, np.nan).reshape(-1),
                "p_cond_mean": cond_mean.reshape(-1),
                "p_cond_std": np.where(self.gold > 0, cond_std, np.nan).reshape(-1),
            }
        )


def _batches(source: Path | pa.Table, batch_rows: int):
    columns = ["p_max", "rank", "top_probs"]
    if isinstance(source, pa.Table):
        yield from source.select(columns).to_batches(max_chunksize=batch_rows)
    else:
        yield from pq.ParquetFile(source).iter_batches(batch_size=batch_rows, columns=columns)


def traces_top_k(source: Path | pa.Table) -> int:
    schema = source.schema if isinstance(source, pa.Table) else pq.read_schema(source)
    return schema.field("top_probs").type.list_size


def build_grid(
    source: Path | pa.Table, bins: int = 10, top_k: int | None = None, batch_rows: int = BATCH_ROWS
) -> pd.DataFrame:
    """The grid of a traces table or parquet file, over ranks 1..top_k (default: the traces' K)."""
    k_traced = traces_top_k(source)
    k = k_traced if top_k is None else top_k
    if not 1 <= k <= k_traced:
        raise ValueError(
            f"top_k = {k} is not allowed: expected 1 <= top_k <= {k_traced} "
            "(the number of probabilities traced per step)"
        )
    acc = GridAccumulator(bins, k)
    for batch in _batches(source, batch_rows):
        acc.add(
            batch.column("p_max").to_numpy(),
            batch.column("rank").to_numpy(),
            top_matrix(batch.column("top_probs"), k_traced),
        )
    return acc.frame()


def c_hat_matrix(grid: pd.DataFrame) -> np.ndarray:
    """c_hat as [bins, K], bin 1 first."""
    return grid.pivot(index="bin", columns="rank", values="c_hat").to_numpy()


def bin_steps(grid: pd.DataFrame) -> np.ndarray:
    return grid.groupby("bin")["steps"].first().to_numpy()
