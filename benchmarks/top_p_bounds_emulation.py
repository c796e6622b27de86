"""CPU emulation: how many of round 0's top_p candidates count bounds alone leave around the cut,
on the benchmark's peaked rows (a design study for a resolve without mass atomics).

Round 0's resolve (`_cut_by_bin_masses`) adds each candidate's mass into its bin with an atomic
to find the cut's bin exactly. Without masses, a count histogram bounds each bin's mass by its
count times the mass at its edges; the bins whose bounds straddle top_p hold the cut. This
prints how many candidates those bins hold after one histogram over [lo, max] of 256-2,048 bins,
and after a second histogram of 256 or 512 bins over the first one's range (the mass above it
summed exactly). The candidates are those `top_p_collect_emulation.py` copies.

    python benchmarks/top_p_bounds_emulation.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_process_logits import make_logits  # noqa: E402
from top_p_collect_emulation import row_candidates  # noqa: E402


def bounded_range(c, lo, hi, mx, total, target, above, nb):
    """The candidates in the bins of [lo, hi] (nb, descending) whose mass bounds straddle target,
    the exact mass above those bins, and the bins' value window."""
    w = (hi - lo) / nb
    j = np.minimum(((hi - c) / w).astype(int), nb - 1)
    cnt = np.bincount(j, minlength=nb)
    upper = hi - np.arange(nb) * w
    up_c = above + np.cumsum(cnt * np.exp(upper - mx) / total)
    low_c = above + np.cumsum(cnt * np.exp(upper - w - mx) / total)
    j_lo = max(int((up_c < target).sum()) - 1, 0)  # widened by a bin each side, as `_bin_range`
    j_hi = min(int((low_c < target).sum()) + 1, nb - 1)
    inside = (j >= j_lo) & (j <= j_hi)
    above = above + np.exp(c[j < j_lo] - mx).sum() / total
    return c[inside], above, hi - (j_lo - 1) * w, hi - (j_hi + 1) * w


def run(rows: int, top_p: float, vocab: int = 151936) -> None:
    z = make_logits(rows, vocab, 3.0, "peaked", rows).numpy()
    one = {nb: [] for nb in (256, 512, 1024, 2048)}
    two = {nb: [] for nb in (256, 512)}
    for r in range(0, rows, max(1, rows // 16)):
        x = z[r].astype(np.float64)
        lo, cand = row_candidates(z[r], rows)
        if not np.isfinite(lo):
            continue
        cand = cand.astype(np.float64)
        mx = x.max()
        total = np.exp(x - mx).sum()
        if np.exp(cand - mx).sum() / total < top_p:
            continue  # the histogram round's row, not round 0's
        for nb, got in one.items():
            got.append(len(bounded_range(cand, lo, mx, mx, total, top_p, 0.0, nb)[0]))
        for nb, got in two.items():
            sub, above, hi2, lo2 = bounded_range(cand, lo, mx, mx, total, top_p, 0.0, nb)
            got.append(len(bounded_range(sub, lo2, hi2, mx, total, top_p, above, nb)[0]))

    def spread(d):
        return ", ".join(f"{nb} bins {min(v)} / {int(np.median(v))} / {max(v)}" for nb, v in d.items())

    n = len(one[256])
    print(f"B={rows:4d} top_p={top_p}, {n} rows; candidates in range (min / median / max):", flush=True)
    print(f"    one histogram: {spread(one)}", flush=True)
    print(f"    two levels:    {spread(two)}", flush=True)


if __name__ == "__main__":
    for rows in (1, 64, 256):
        for top_p in (0.9, 0.95):
            run(rows, top_p)
