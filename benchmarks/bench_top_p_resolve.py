#!/usr/bin/env python3
"""Tuning aid: ways to read the top_p cut off round 0's candidates, timed on the same buffers.

Runs `apply_rules` on the kernels for top_p rows (peaked logits as in kernel_smoke.py), keeps
the candidate buffer round 0 filled (the elements >= each row's bound), and then times, per
method, one program per row reading the cut off it (the work of `_sel_first_resolve`):

- ``bisect``: what `_sel_first_resolve` did before 2026-12-03 (sort <= 256, bisection in
  registers <= 2,048, else bisection re-reading the buffer in 2,048 blocks);
- ``bisect-N``: bisection with up to N candidates in registers;
- ``sort-N``: sort up to N candidates, cumulative mass, first index reaching top_p;
- ``select-N-NB``: `_select` over the buffer (N per step, NB histogram bins) down to <= 256
  candidates, then a sort of those (what `_sel_first_resolve` did from the morning of
  2026-12-03, with N = 2,048 and 256 bins; now its fallback);
- ``bins-NB``: `_cut_by_bin_masses` (exact per-bin masses added with atomics, the cut's bin
  sorted; 2,048 per step, NB bins), `_select` where that bin holds more than 256 (what
  `_sel_first_resolve` does since the evening of 2026-12-03, with 256 bins).

Rows with more candidates than a method holds fall back to the re-reading bisection. Every
method's cut is checked against the pipeline's. Interpreter check on the CPU:
``TRITON_INTERPRET=1 python benchmarks/bench_top_p_resolve.py --rows 8 --vocab 20000``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "samplers"))

import torch  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from sss.samplers import SamplerBatch, SamplerSpec, kernels  # noqa: E402
from sss.samplers.kernels.triton_rules import (  # noqa: E402
    SMALL,
    SMALL_CAP,
    _cut_by_bin_masses,
    _pick,
    _pick_bisect,
    _select,
)
from test_kernels_gpu import make_rows  # noqa: E402

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"


@triton.jit
def _resolve_variant(
    cand_ptr,
    cnt_ptr,
    ZS,
    win_ptr,
    mx_ptr,
    s_ptr,
    p_ptr,
    out_ptr,
    B,
    small_ptr,
    hm_ptr,
    CAPN: tl.constexpr,
    METHOD: tl.constexpr,
    BLK: tl.constexpr,
    NB: tl.constexpr,
):
    row = tl.program_id(0)
    n_c = tl.load(cnt_ptr + row.to(tl.int64) * ZS)
    mx = tl.load(mx_ptr + row)
    lo = tl.load(win_ptr + B + row)
    inv_s = 1.0 / tl.load(s_ptr + row)
    target = tl.load(p_ptr + row).to(tl.float64)  # float32 as in the batch
    cand = cand_ptr + row.to(tl.int64) * (CAPN + SMALL_CAP)  # as `_sel_first` lays it out
    result = float("nan")
    if (lo == lo) & (n_c <= CAPN):
        if METHOD == 0:
            if n_c <= SMALL_CAP:
                result = _pick(cand, n_c, 0, 0.0, mx, inv_s, 0, target, 0, lo, lo, True, 2, SMALL_CAP)
            elif n_c <= BLK:
                result = _pick_bisect(cand, n_c, mx, inv_s, 0, target, True, BLK, False)
            else:
                result = _pick_bisect(cand, n_c, mx, inv_s, 0, target, True, BLK, True)
        elif METHOD == 4:
            if n_c <= SMALL_CAP:
                result = _pick(cand, n_c, 0, 0.0, mx, inv_s, 0, target, 0, lo, lo, True, 2, SMALL_CAP)
            else:  # histogram + collect over the buffer into a 256-slot buffer, sort that
                small = small_ptr + row.to(tl.int64) * SMALL_CAP
                result = _select(
                    cand, n_c, 1.0, False, mx, 1.0 / inv_s, 0, target, True, small, mx, lo, BLK, NB, SMALL_CAP, True
                )
        elif METHOD == 5:
            small = small_ptr + row.to(tl.int64) * SMALL_CAP
            if n_c <= SMALL_CAP:
                result = _pick(cand, n_c, 0, 0.0, mx, inv_s, 0, target, 0, lo, lo, True, 2, SMALL_CAP)
            else:
                hm = hm_ptr + row.to(tl.int64) * NB
                result, w_hi, w_lo, _ = _cut_by_bin_masses(
                    cand, n_c, mx, inv_s, target, lo, hm, small, cand, 1, BLK, NB, False, SMALL_CAP, False, hm
                )
                if result != result:
                    result = _select(
                        cand, n_c, 1.0, False, mx, 1.0 / inv_s, 0, target, True, small, w_hi, w_lo, BLK, NB, SMALL_CAP,
                        True,
                    )  # fmt: skip
            result = tl.maximum(result, lo)
        elif n_c > BLK:
            result = _pick_bisect(cand, n_c, mx, inv_s, 0, target, True, 2048, True)
        elif METHOD == 1:
            result = _pick_bisect(cand, n_c, mx, inv_s, 0, target, True, BLK, False)
        elif METHOD == 2:
            result = _pick(cand, n_c, 0, 0.0, mx, inv_s, 0, target, 0, lo, lo, True, 2, BLK)
    tl.store(out_ptr + row, result)


# name: (METHOD, BLK, NB)
METHODS = {"bisect": (0, 2048, 1), "bisect-4096": (1, 4096, 1), "sort-1024": (2, 1024, 1), "sort-4096": (2, 4096, 1)}
METHODS |= {f"select-{blk}-{nb}": (4, blk, nb) for blk in (1024, 2048, 4096) for nb in (16, 128, 256, 512)}
METHODS |= {f"bins-{nb}": (5, 2048, nb) for nb in (16, 128, 256, 512)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=151936)
    ap.add_argument("--top-p", type=float, nargs="+", default=[0.9, 0.5, 0.95])
    ap.add_argument("--methods", nargs="+", default=list(METHODS))
    ap.add_argument("--warps", type=int, nargs="+", default=[8])
    args = ap.parse_args()
    dev = "cpu" if INTERPRET else "cuda"
    z = make_rows("peaked", args.rows, args.vocab, seed=args.rows).to(dev)
    for p in args.top_p:
        batch = SamplerBatch.from_specs([SamplerSpec(top_p=p)] * args.rows, device=dev)
        kernels._WORKSPACE.clear()
        kernels.apply_rules_cuda(z, batch)
        (f_views, i_views, d_views) = next(iter(kernels._WORKSPACE.values()))
        res, cand, win_p, sel_mx = f_views[1], f_views[5], f_views[7], f_views[4]
        zsel, sel_s = i_views[3], d_views[0]
        zs = zsel.numel() // args.rows
        capn = cand.numel() // args.rows - SMALL
        n_c = zsel.view(args.rows, zs)[:, 0].cpu()
        lo = win_p[args.rows :].cpu()
        ok = (lo == lo) & (n_c <= capn)
        ref = res[: args.rows].cpu()
        q = torch.quantile(n_c[ok].float(), torch.tensor([0.1, 0.5, 0.9, 1.0])).tolist() if ok.any() else []
        print(f"top_p={p}: rows resolved by round 0 {int(ok.sum())}/{args.rows}; candidates p10/50/90/max {q}")
        for name in args.methods:
            method, blk, nb = METHODS[name]
            for warps in args.warps:
                got = torch.empty(args.rows, dtype=torch.float32, device=dev)
                ps = torch.full((args.rows,), p, dtype=torch.float32, device=dev)
                small = torch.empty((args.rows, SMALL), dtype=torch.float32, device=dev)
                hm = torch.empty((args.rows, nb), dtype=torch.int64, device=dev)

                def run(got=got, ps=ps, small=small, hm=hm, method=method, blk=blk, nb=nb, warps=warps):
                    _resolve_variant[(args.rows,)](
                        cand, zsel, zs, win_p, sel_mx, sel_s, ps, got, args.rows, small, hm,
                        CAPN=capn, METHOD=method, BLK=blk, NB=nb, num_warps=warps,
                    )  # fmt: skip

                run()
                g = got.cpu()
                wrong = int((ok & (g != ref)).sum())
                if INTERPRET:
                    us = float("nan")
                else:
                    us = triton.testing.do_bench(run, warmup=5, rep=50) * 1e3
                print(f"  {name:16s} warps {warps:2d}  {us:8.1f} us  rows whose cut differs: {wrong}", flush=True)


if __name__ == "__main__":
    main()
