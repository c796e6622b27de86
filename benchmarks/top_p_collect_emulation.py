"""CPU emulation of top_p's candidate copy in the statistics pass (`_online_stats`, `_calibrate`)
and of round 0's check that the copies hold top_p's mass, on the benchmark's peaked rows.

Per (row, chunk) program, as the kernel does it: a threshold t from the first block (where that
block holds more than 3/4 of the segment's share per block, the grid value, 63 steps below the
block max within 16, that leaves it that share), then every finite logit >= max(running max - 16,
t) copied, and the program gives up when its segment would overflow. The row's candidates are
those >= the highest of its programs' thresholds; the row resolves in round 0 when their mass
reaches top_p. Prints, per batch size and top_p, how many of 16 rows resolve and the candidates
per row. The chunking and segment sizes follow `sss.samplers.kernels.apply_rules_cuda`.

    python benchmarks/top_p_collect_emulation.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_process_logits import make_logits  # noqa: E402

BLOCK, WBINS, WINDOW, FIRST_CAP, STATS_PROGRAMS, MAX_CHUNKS = 2048, 64, 16.0, 16384, 1024, 128


def calibrate(block: np.ndarray, target: int) -> float:
    m = block.max()
    kept = block[np.isfinite(block) & (block >= m - WINDOW)]
    if len(kept) <= target:
        return -np.inf
    scale = (WBINS - 1) / WINDOW
    bins = np.minimum((m - kept) * scale, WBINS - 1).astype(int)
    cum = np.cumsum(np.bincount(bins, minlength=WBINS))
    nb = int(((cum <= target) & (np.arange(WBINS) < WBINS - 1)).sum())
    return m - nb / scale if nb > 0 else np.inf


def copy_chunk(x: np.ndarray, kseg: int) -> tuple[float, np.ndarray]:
    n_blk = max(-(-len(x) // BLOCK), 1)
    t = calibrate(x[:BLOCK], max((kseg // n_blk) * 3 // 4, 1))
    m, seg = -np.inf, []
    for i in range(n_blk):
        b = x[i * BLOCK : (i + 1) * BLOCK]
        m = max(m, b.max())
        keep = b[np.isfinite(b) & (b >= max(t, m - WINDOW))]
        if sum(map(len, seg)) + len(keep) > kseg:
            return np.inf, np.empty(0)  # gave up
        seg.append(keep)
    return max(t, m - WINDOW), np.concatenate(seg)


def layout(rows: int, vocab: int) -> tuple[int, int, int]:
    """(chunks per row, chunk length, segment slots) as `apply_rules_cuda` sets them."""
    n_blocks = -(-vocab // BLOCK)
    chunks = max(1, min(n_blocks, MAX_CHUNKS, -(-STATS_PROGRAMS // rows)))
    chunk = -(-n_blocks // chunks) * BLOCK
    chunks = -(-vocab // chunk)
    kseg = max(FIRST_CAP // chunks, FIRST_CAP // 64, 1)
    return chunks, chunk, 1 << (min(kseg, 65536 // chunks).bit_length() - 1)


def row_candidates(x: np.ndarray, rows: int) -> tuple[float, np.ndarray]:
    """(lo, the row's candidates >= lo) from its programs' segments; lo is +inf where one gave up."""
    chunks, chunk, kseg = layout(rows, len(x))
    parts = [copy_chunk(x[c * chunk : (c + 1) * chunk], kseg) for c in range(chunks)]
    lo = max(th for th, _ in parts)
    cand = np.concatenate([seg for _, seg in parts]) if np.isfinite(lo) else np.empty(0)
    return lo, cand[cand >= lo]


def run(rows: int, top_p: float, vocab: int = 151936) -> None:
    z = make_logits(rows, vocab, 3.0, "peaked", rows).numpy()
    chunks, _, kseg = layout(rows, vocab)
    picked = range(0, rows, max(1, rows // 16))
    resolved, sizes = 0, []
    for r in picked:
        x = z[r]
        _, cand = row_candidates(x, rows)
        mx = x.max()
        mass = np.exp(cand.astype(np.float64) - mx).sum() / np.exp(x.astype(np.float64) - mx).sum()
        resolved += mass >= top_p
        sizes.append(len(cand))
    print(
        f"B={rows:4d} top_p={top_p}: {chunks} chunks, segments of {kseg}: {resolved}/{len(picked)} rows resolve "
        f"in round 0, {min(sizes)}-{max(sizes)} candidates per row",
        flush=True,
    )


if __name__ == "__main__":
    for rows in (1, 64, 256):
        for top_p in (0.9, 0.95, 0.999):
            run(rows, top_p)
