#!/usr/bin/env python3
"""Are the sampler kernels deterministic, and do launch plans change their output or only their
host time? On a GPU, at V = 151,936 on the GPU tests' "peaked" rows:

1. each rule's full path (launch plans dropped before each call) run three times, compared bit for
   bit with the first run (rows that differ, and the kept count's largest change);
2. a replayed plan against the full path's output;
3. B = 1 wall time with plans on and off, alternated in one process (medians of alternating
   blocks, so drift hits both alike).

    python benchmarks/kernel_repeat_check.py [--rows 64 256] [--rules top_p=0.999 top_p=0.9 ...]
"""

from __future__ import annotations

import argparse
import faulthandler
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "samplers"))

import torch  # noqa: E402

from sss.samplers import SamplerBatch, apply_rules, kernels  # noqa: E402
from kernel_smoke import specs_for, wall_samples  # noqa: E402  (this script's folder is on sys.path)
from test_kernels_gpu import make_rows  # noqa: E402


def full(z: torch.Tensor, batch: SamplerBatch) -> torch.Tensor:
    """One call through the whole launch path: no plan to replay."""
    kernels._PLANS.clear()
    return apply_rules(z, batch).clone()


def compare(a: torch.Tensor, b: torch.Tensor) -> str:
    rows = (a != b).any(dim=1)
    kept = ((a > -math.inf).sum(1) - (b > -math.inf).sum(1)).abs()
    return f"{int(rows.sum()):3d} rows differ (kept count off by up to {int(kept.max())})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--rules", nargs="+", default=["top_p=0.999", "top_p=0.9", "top_k=3000", "stack:all"])
    ap.add_argument("--timing-rules", nargs="*", default=["none", "min_p", "top_k=20", "top_p=0.9", "calibrated_topk"])
    ap.add_argument("--vocab", type=int, default=151936)
    ap.add_argument("--repeats", type=int, default=2, help="full-path calls compared with the first")
    ap.add_argument("--hang", type=float, default=240, help="dump stacks and exit after this many seconds")
    args = ap.parse_args()
    faulthandler.dump_traceback_later(args.hang, exit=True)
    print(torch.cuda.get_device_name(), flush=True)
    for rows in args.rows:
        z = make_rows("peaked", rows, args.vocab, seed=rows).cuda()
        for name in args.rules:
            batch = SamplerBatch.from_specs(specs_for(name, rows), device="cuda")
            first = full(z, batch)
            again = [compare(first, full(z, batch)) for _ in range(args.repeats)]
            replay = apply_rules(z, batch).clone()  # the plan left by the last full call
            print(
                f"B={rows:4d} {name:14s} full vs full: {' | '.join(again)}; replay vs full: {compare(first, replay)}",
                flush=True,
            )
    z = make_rows("peaked", 1, args.vocab, seed=1).cuda()
    for name in args.timing_rules:
        batch = SamplerBatch.from_specs(specs_for(name, 1), device="cuda")
        samples = {True: [], False: []}
        for block in range(6):
            for on in (True, False) if block % 2 == 0 else (False, True):
                kernels.PLANS = on
                kernels._PLANS.clear()
                apply_rules(z, batch)  # the plan (when on) is made here, then replayed
                samples[on] += wall_samples(lambda: apply_rules(z, batch), 50)
        kernels.PLANS = True
        on, off = statistics.median(samples[True]), statistics.median(samples[False])
        print(f"B=   1 {name:16s} plans on {on:6.1f} us  off {off:6.1f} us  (on / off {on / off:4.2f})", flush=True)


if __name__ == "__main__":
    main()
