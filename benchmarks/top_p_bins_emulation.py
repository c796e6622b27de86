#!/usr/bin/env python3
"""Why round 0's top_p resolve bins exact masses: a float64 emulation, on the CPU, of what the
kernels did with the benchmark's peaked rows (bench_process_logits.make_logits) at top_p = 0.9
until 2026-12-03, night (the level-mass bound is gone since; `top_p_collect_emulation.py`
emulates the candidates' copy that replaced it; the per-bin masses stayed).

Per row: the bound from the level masses (each 2,048-logit block's mass within j = 0..7 of its
max; the largest level value t whose per-block best level masses reach top_p + 2e-5), the
candidates at or above it, then 256 bins over [bound, max] as `_bin_of` lays them out. Printed:
how many candidates the count histogram's mass bounds (count x each bin's edges, what `_select`
uses) leave in range, against how many the cut's own bin holds (what `_cut_by_bin_masses` sorts).

    python benchmarks/top_p_bins_emulation.py [--rows 16] [--top-p 0.9]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from bench_process_logits import QWEN25_VOCAB, make_logits  # noqa: E402

BLOCK, LEVELS, BINS = 2048, 8, 256


def bound(x: torch.Tensor, e: torch.Tensor, target: float) -> float:
    """The level-mass bound of the earlier kernels' `_tile_bounds` (its exact value, without the halvings)."""
    blocks = math.ceil(len(x) / BLOCK)
    lb = torch.zeros(blocks, LEVELS, dtype=torch.float64)
    lv = torch.zeros(blocks, LEVELS, dtype=torch.float64)
    for b in range(blocks):
        xb, eb = x[b * BLOCK : (b + 1) * BLOCK], e[b * BLOCK : (b + 1) * BLOCK]
        for j in range(LEVELS):
            lv[b, j] = xb.max() - j
            lb[b, j] = eb[xb >= lv[b, j]].sum()
    for t in sorted(lv.flatten().tolist(), reverse=True):
        if torch.where(lv >= t, lb, 0.0).max(1).values.sum() >= target:
            return t
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--top-p", type=float, default=0.9)
    args = ap.parse_args()
    z = make_logits(args.rows, QWEN25_VOCAB, 3.0, "peaked", 0).double()
    p = args.top_p
    for r in range(args.rows):
        x = z[r]
        mx = x.max()
        e = torch.exp(x - mx)
        s = e.sum()
        lo = bound(x, e, (p + 2e-5) * s)
        xs = x.sort(descending=True).values
        cut = xs[int((torch.cumsum(torch.exp(xs - mx), 0) / s < p).sum())]
        c = x[x >= lo]
        width = (mx - lo) / (BINS - 2)
        if width == 0:
            print(f"row {r:3d}: the cut is the max; {len(c)} candidate(s)")
            continue
        bins = torch.clamp(((mx - c) / width).long() + 1, 1, BINS - 2)
        cnt = torch.bincount(bins, minlength=BINS).double()
        j = torch.arange(BINS, dtype=torch.float64)
        up = cnt * torch.exp(torch.clamp(mx - (j - 1) * width, max=mx) - mx)
        low = cnt * torch.exp(torch.clamp(mx - j * width, min=lo) - mx)
        up[0] = low[0] = 0
        j_lo = max(int((torch.cumsum(up, 0) / s < p).sum()) - 1, 1)
        j_hi = min(int((torch.cumsum(low, 0) / s < p).sum()) + 1, BINS - 1)
        in_range = int(((bins >= j_lo) & (bins <= j_hi)).sum())
        cut_bin = int(torch.clamp(((mx - cut) / width).long() + 1, 1, BINS - 2))
        print(
            f"row {r:3d}: bound {float(lo - mx):6.2f}, cut {float(cut - mx):6.2f} from the max; "
            f"{len(c):5d} candidates; count bounds leave {in_range:5d} in range; "
            f"the cut's bin holds {int((bins == cut_bin).sum()):4d}"
        )


if __name__ == "__main__":
    main()
