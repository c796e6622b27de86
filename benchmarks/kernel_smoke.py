#!/usr/bin/env python3
"""Quick check of the sampler kernel on a GPU: kept sets against the torch path, and wall time
against the `amax` floor, for a few rules at V = 151,936 (a minute; the full runs are
`scripts/gpu-tests.sh`). Used while tuning (`--profile`: each kernel's device time; `--host-profile`:
where the host time goes; `--graph`: a CUDA-graph replay of the call; buffer sizes: benchmarks/kernel_variants.sh).

    python benchmarks/kernel_smoke.py [--rows 1 64 256] [--rules none top_p ...]

Rules are the GPU tests' specs by name; "mixed" cycles all of them over the rows, "bench_mixed"
cycles the rules of bench_process_logits.py as its mixed batch does (the issue's case).
"""

from __future__ import annotations

import argparse
import faulthandler
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "samplers"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from sss.samplers import SamplerBatch, apply_rules  # noqa: E402
from bench_process_logits import cases  # noqa: E402
from test_kernels_gpu import SPECS, make_rows, torch_path  # noqa: E402


def specs_for(name: str, rows: int) -> list:
    """The specs of a batch of `rows`: a GPU test's spec by name on every row, or "mixed" (every
    such spec in turn) or "bench_mixed" (bench_process_logits.py's mixed batch)."""
    if name == "mixed":
        mixed = list(SPECS.values())
        return [mixed[i % len(mixed)] for i in range(rows)]
    if name == "bench_mixed":
        return dict(cases(rows))["mixed"]
    if name not in SPECS:
        raise SystemExit(f"unknown rule {name!r}: one of {', '.join(SPECS)}, mixed, bench_mixed")
    return [SPECS[name]] * rows


def wall_samples(fn, repeats: int = 30) -> list[float]:
    """Wall time of each of `repeats` calls in us, a synchronize on each side."""
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e6)
    return times


def wall(fn, repeats: int = 30) -> float:
    """Median wall time of one call in us, after 3 warm-up calls."""
    for _ in range(3):
        fn()
    return statistics.median(wall_samples(fn, repeats))


def device_us(fn, repeats: int = 30) -> float:
    """Median device time of one call (CUDA events around it), launch gaps included."""
    times = []
    for _ in range(repeats):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b) * 1e3)
    return statistics.median(times)


def host_us(fn, repeats: int = 30) -> float:
    """Median host time of one call, not waiting for the device."""
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    torch.cuda.synchronize()
    return statistics.median(times) * 1e6


def profile(fn, repeats: int = 10) -> None:
    """Each kernel's mean device time per call (torch.profiler)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(repeats):
            fn()
        torch.cuda.synchronize()
    for e in sorted(prof.key_averages(), key=lambda e: -e.device_time_total)[:8]:
        if e.device_time_total > 0:
            print(f"    {e.key[:40]:40s} {e.device_time_total / repeats:8.1f} us/call  x{e.count // repeats}")


def host_profile(fn, repeats: int = 200) -> None:
    """Where the host time of a call goes (cProfile over `repeats` calls, top entries by own time)."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    for _ in range(repeats):
        fn()
    prof.disable()
    torch.cuda.synchronize()
    stats = pstats.Stats(prof)
    stats.sort_stats("tottime")
    total = stats.total_tt / repeats * 1e6
    print(f"    host profile: {total:.1f} us/call under cProfile")
    rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:14]
    for (file, line, name), (_, calls, tottime, cumtime, _) in rows:
        where = f"{Path(file).name}:{line}({name})"
        own, cum = tottime / repeats * 1e6, cumtime / repeats * 1e6
        print(f"      {own:7.1f} us own {cum:7.1f} cum x{calls // repeats:3d}  {where[:70]}")


def captured(z: torch.Tensor, batch: SamplerBatch):
    """(replay, static input) of `apply_rules` captured in a CUDA graph, as docs/kernels.md says."""
    static = z.clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        apply_rules(static, batch)  # compiles outside the capture
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        apply_rules(static, batch)
    return graph.replay, static


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[1, 64, 256])
    ap.add_argument(
        "--rules",
        nargs="+",
        default=["none", "min_p", "edt", "top_k=20", "top_p=0.9", "calibrated_topk", "stack:all", "mixed"],
    )
    ap.add_argument("--vocab", type=int, default=151936)
    ap.add_argument("--profile", action="store_true", help="also print each kernel's device time")
    ap.add_argument("--graph", action="store_true", help="also time a CUDA-graph replay of the call (docs/kernels.md)")
    ap.add_argument("--host-profile", action="store_true", help="also print where the host time of a call goes")
    ap.add_argument("--hang", type=float, default=60, help="dump stacks and exit after this many seconds")
    args = ap.parse_args()
    faulthandler.dump_traceback_later(args.hang, exit=True)
    print(torch.cuda.get_device_name(), flush=True)
    for rows in args.rows:
        z = make_rows("peaked", rows, args.vocab, seed=rows).cuda()
        floor = wall(lambda: z.amax(-1))
        floor_dev = device_us(lambda: z.amax(-1))
        for name in args.rules:
            specs = specs_for(name, rows)
            batch = SamplerBatch.from_specs(specs, device="cuda")
            out = apply_rules(z, batch)
            with torch_path():
                ref = apply_rules(z, batch)
                t_torch = wall(lambda: apply_rules(z, batch), 10)
            bad = ((out > -math.inf) != (ref > -math.inf)).any(dim=1)
            diff = int(bad.sum())
            both = (out > -math.inf) & (ref > -math.inf)  # kept by both: the same values (z / T)
            values = "same" if torch.equal(out[both], ref[both]) else "DIFFER"
            if diff and name.endswith("mixed"):
                print("    differing rows:", sorted({str(specs[r]) for r in bad.nonzero().flatten().tolist()})[:6])
            t = wall(lambda: apply_rules(z, batch))
            # the timed calls replay the first one's launch plan (docs/kernels.md): same output
            replayed = "same" if torch.equal(apply_rules(z, batch), out) else "DIFFERS"
            dev = device_us(lambda: apply_rules(z, batch))
            host = host_us(lambda: apply_rules(z, batch))
            if args.profile:
                profile(lambda: apply_rules(z, batch))
            if args.host_profile:
                host_profile(lambda: apply_rules(z, batch))
            graph_note = ""
            if args.graph:
                replay, _ = captured(z, batch)
                t_graph = wall(replay)  # the input stays in place (a decode step would write it)
                graph_note = f"  graph {t_graph:7.1f} us (x floor {t_graph / floor:5.2f})"
            print(
                f"B={rows:4d} {name:18s} kernel {t:7.1f} us  x floor {t / floor:5.2f}  device {dev:7.1f} "
                f"host {host:6.1f}  torch {t_torch:7.1f}  floor {floor:5.1f} dev {floor_dev:5.1f}  "
                f"differ {diff}  values {values}  replay {replayed}{graph_note}",
                flush=True,
            )


def print_registers() -> None:
    """Registers and spills of each compiled kernel variant (occupancy: 65,536 registers per SM)."""
    from sss.samplers import kernels

    for key, (*_, compiled) in kernels._COMPILED.items():
        consts = {k: v for k, v in key[3:]}
        name = key[0].fn.__name__
        print(f"    {name:16s} regs {compiled.n_regs:3d} spills {compiled.n_spills:3d} warps {key[1]} {consts}")


if __name__ == "__main__":
    main()
    if "--profile" in sys.argv:
        print_registers()
