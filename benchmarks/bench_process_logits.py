#!/usr/bin/env python3
"""Time `sss.samplers.process_logits` per sampler rule against a one-pass floor.

For each batch size B and each rule (one `SamplerSpec` per rule, plus a stack and
a mixed batch), the script times a full ``process_logits(logits, spec)`` call,
``apply_rules(logits, batch)`` with the `SamplerBatch` built beforehand (what an
engine that caches the batch pays) and ``SamplerBatch.from_specs`` alone. The floor
is ``logits.amax(-1)``: one read of the logits, re-timed in the same process on the
same tensor just before each case.

On CUDA, `apply_rules` takes the Triton kernels (`sss.samplers.kernels`); the same call
with ``SSS_SAMPLER_KERNELS=0`` (the torch path) is timed beside it as a column.

Timing: ``--warmup`` untimed calls, then up to ``--repeats`` timed calls, each
bracketed by ``torch.cuda.synchronize()`` on GPU and timed with a wall clock
(so host-side work -- Python, building the batch, host<->device syncs -- counts,
as it does in a decode loop); the median is reported. On GPU each timed call is also
bracketed by CUDA events: the device time from the first kernel's start to the last one's
end (launch gaps inside the call included), whose median is the ``*_dev_ms`` column.
``--budget`` caps the seconds spent on one case (at least ``--min-repeats`` calls are always timed),
which keeps slow CPU cases short; the repeats actually timed are reported.

Run from the repo root with only torch installed::

    python benchmarks/bench_process_logits.py --device cpu --threads 2
    python benchmarks/bench_process_logits.py --device cuda --out /tmp/gpu.json

Writes JSON (``--out``) plus a CSV and a Markdown table beside it.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import math
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from sss.samplers import EDT, CalibratedEpsilon, SamplerBatch, SamplerSpec, apply_rules, process_logits  # noqa: E402

QWEN25_VOCAB = 151_936


def rule_specs() -> list[tuple[str, SamplerSpec]]:
    """One spec per rule, in table order."""
    return [
        ("none", SamplerSpec()),
        ("temperature", SamplerSpec(temperature=0.7)),
        ("greedy", SamplerSpec(temperature=0.0)),
        ("top_k", SamplerSpec(top_k=20)),
        ("top_p", SamplerSpec(top_p=0.9)),
        ("min_p", SamplerSpec(min_p=0.1)),
        ("epsilon", SamplerSpec(epsilon=0.05)),
        ("eta", SamplerSpec(eta=0.001)),
        ("edt", SamplerSpec(edt=EDT(n=0.8, theta=1.0, t0=1.0))),
        ("greedy_threshold", SamplerSpec(greedy_threshold=0.3)),
        ("calibrated_topk", SamplerSpec(calibrated_topk=(1, 1, 2, 2, 3, 3, 4, 5, 6, 8))),
        ("calibrated_epsilon", SamplerSpec(calibrated_epsilon=CalibratedEpsilon(a=-0.506, b=0.795, c=0.05))),
        ("confidence_bin", SamplerSpec(confidence_bin=5)),
        ("stack:min_p+greedy_threshold", SamplerSpec(min_p=0.1, greedy_threshold=0.3)),
    ]


def cases(batch_size: int):
    """(name, spec or list of specs) for one batch size; the mixed batch cycles the rules over rows."""
    singles = rule_specs()
    out = list(singles)
    cycle = [spec for name, spec in singles if name != "none"]
    out.append(("mixed", [cycle[i % len(cycle)] for i in range(batch_size)]))
    return out


def make_logits(batch: int, vocab: int, scale: float, kind: str, seed: int) -> torch.Tensor:
    """float32 [B, V] logits on the CPU: ``randn * scale``, and for ``peaked`` one boosted token per row.

    With plain ``randn * 3`` over 152k tokens every row has p_max ~ 0.03, so every rank rule
    that looks at confidence (greedy_threshold, calibrated_topk, confidence_bin) collapses to
    k = 1. ``peaked`` sets one random token per row so that the row's p_max is a chosen value,
    spread evenly over (0, 1) across rows (0.5 for B = 1), so every confidence bin is used.
    """
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, vocab, generator=g) * scale
    if kind == "peaked":
        q = (torch.arange(batch, dtype=torch.float64) + 0.5) / batch
        q = q[torch.randperm(batch, generator=g)]
        tok = torch.randint(0, vocab, (batch,), generator=g)
        rows = torch.arange(batch)
        z[rows, tok] = -math.inf
        rest = torch.logsumexp(z.double(), dim=-1)
        z[rows, tok] = (torch.log(q) - torch.log1p(-q) + rest).float()
    return z


def cpu_description() -> str:
    model = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return model or platform.processor() or platform.machine()


def _loadavg() -> list[float] | None:
    """1/5/15-minute load averages: on a shared CPU they say how contended the timings were."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def device_info(device: torch.device, threads: int) -> dict:
    info = {
        "device": device.type,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_description(),
        "cpu_count": os.cpu_count(),
        "torch_threads": threads,
        "loadavg_at_start": _loadavg(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            {
                "gpu": torch.cuda.get_device_name(device),
                "gpu_memory_gib": round(props.total_memory / 2**30, 1),
                "gpu_sms": props.multi_processor_count,
                "gpu_capability": f"{props.major}.{props.minor}",
                "cuda": torch.version.cuda,
            }
        )
    return info


class Timings(list):
    """Wall-clock seconds per call; ``device`` holds the CUDA-event seconds of the same calls."""

    device: list[float]


def timer(device: torch.device):
    gpu = device.type == "cuda"
    if gpu:

        def sync():
            torch.cuda.synchronize(device)
    else:

        def sync():
            pass

    def measure(fn, warmup: int, repeats: int, min_repeats: int, budget: float) -> Timings:
        for _ in range(warmup):
            fn()
        sync()
        times = Timings()
        times.device = []
        start = time.perf_counter()
        for i in range(repeats):
            sync()
            if gpu:
                ev0, ev1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            t0 = time.perf_counter()
            if gpu:
                ev0.record()
            fn()
            if gpu:
                ev1.record()
            sync()
            times.append(time.perf_counter() - t0)
            if gpu:
                times.device.append(ev0.elapsed_time(ev1) / 1e3)
            if i + 1 >= min_repeats and time.perf_counter() - start > budget:
                break
        return times

    return measure


def dev_ms(t: Timings) -> float | None:
    return statistics.median(t.device) * 1e3 if t.device else None


def torch_path(fn):
    """fn run with the kernels switched off (SSS_SAMPLER_KERNELS=0): the torch code."""

    def run():
        old = os.environ.get("SSS_SAMPLER_KERNELS")
        os.environ["SSS_SAMPLER_KERNELS"] = "0"
        try:
            return fn()
        finally:
            if old is None:
                del os.environ["SSS_SAMPLER_KERNELS"]
            else:
                os.environ["SSS_SAMPLER_KERNELS"] = old

    return run


def count_syncs(fn) -> int | None:
    """Host<->device synchronisations in one call, as torch's CUDA sync debug mode reports them."""
    try:
        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                fn()
            finally:
                torch.cuda.set_sync_debug_mode("default")
        torch.cuda.synchronize()
        return sum("synchroniz" in str(w.message).lower() for w in caught)
    except Exception:  # noqa: BLE001 -- diagnostics only
        return None


def parse_sizes(text: str) -> list[int]:
    return [int(x) for x in text.replace(",", " ").split()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch-sizes", default="1,64,256", help="comma-separated, default 1,64,256")
    ap.add_argument("--vocab", type=int, default=QWEN25_VOCAB, help=f"default {QWEN25_VOCAB} (Qwen2.5)")
    ap.add_argument("--repeats", type=int, default=None, help="timed calls per case (default: cuda 100, cpu 20)")
    ap.add_argument("--min-repeats", type=int, default=5, help="timed calls per case even past --budget")
    ap.add_argument("--warmup", type=int, default=None, help="untimed calls per case (default: cuda 10, cpu 2)")
    ap.add_argument(
        "--budget", type=float, default=None, help="seconds per case after which timing stops (default: cuda 10, cpu 3)"
    )
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: os.cpu_count())")
    ap.add_argument("--scale", type=float, default=3.0, help="logits = randn * scale (default 3)")
    ap.add_argument(
        "--logits",
        choices=["peaked", "normal"],
        default="peaked",
        help="peaked (default): one token per row set so p_max spreads over (0,1); normal: randn*scale",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rules", default=None, help="comma-separated subset of rule names (default: all)")
    ap.add_argument("--no-apply-rules", action="store_true", help="skip the apply_rules (prebuilt batch) timing")
    ap.add_argument("--no-from-specs", action="store_true", help="skip the SamplerBatch.from_specs timing")
    ap.add_argument(
        "--no-torch",
        action="store_true",
        help="on cuda, skip the torch-path column (apply_rules with SSS_SAMPLER_KERNELS=0)",
    )
    ap.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    ap.add_argument("--label", default=None, help="free text stored in the JSON meta (e.g. which code was measured)")
    ap.add_argument(
        "--out",
        default=None,
        help="JSON path; a .csv and a .md are written beside it "
        "(default benchmarks/results/process_logits_<device>_<date>.json)",
    )
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda but torch.cuda.is_available() is False")
    gpu = device.type == "cuda"
    repeats = args.repeats or (100 if gpu else 20)
    warmup = args.warmup if args.warmup is not None else (10 if gpu else 2)
    budget = args.budget if args.budget is not None else (10.0 if gpu else 3.0)
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    sizes = parse_sizes(args.batch_sizes)
    wanted = set(args.rules.split(",")) if args.rules else None

    today = _dt.datetime.now(_dt.UTC)
    out = (
        Path(args.out)
        if args.out
        else (REPO_ROOT / "benchmarks" / "results" / f"process_logits_{device.type}_{today:%Y%m%d}.json")
    )
    out.parent.mkdir(parents=True, exist_ok=True)

    meta = device_info(device, threads)
    meta.update(
        {
            "date_utc": today.isoformat(timespec="seconds"),
            "vocab": args.vocab,
            "dtype": args.dtype,
            "kernels": gpu and os.environ.get("SSS_SAMPLER_KERNELS", "1") != "0",
            "logits": f"{args.logits}: randn * {args.scale}"
            + (
                ", one token per row boosted so p_max = (i + 0.5) / B, rows shuffled" if args.logits == "peaked" else ""
            ),
            "seed": args.seed,
            "batch_sizes": sizes,
            "warmup": warmup,
            "repeats_max": repeats,
            "min_repeats": args.min_repeats,
            "budget_s_per_case": budget,
            "timing": (
                "wall clock per call, torch.cuda.synchronize() before and after each call; median"
                if gpu
                else "wall clock per call (time.perf_counter); median"
            ),
            "floor": "logits.amax(-1), re-timed (same warmup/repeats) just before each case",
            "label": args.label,
        }
    )
    desc = meta.get("gpu") or meta["cpu"]
    print(
        f"# process_logits benchmark: {device.type} ({desc}), torch {meta['torch']}, "
        f"threads {threads}, V = {args.vocab}",
        flush=True,
    )

    measure = timer(device)
    results = []
    for b in sizes:
        logits = make_logits(b, args.vocab, args.scale, args.logits, args.seed).to(device, getattr(torch, args.dtype))
        for name, spec in cases(b):
            if wanted and name.split(" ")[0] not in wanted:
                continue
            res = process_logits(logits, spec)
            kept = torch.isfinite(res).sum(-1)
            if res.shape != logits.shape or bool((kept < 1).any()):
                raise RuntimeError(f"{name}: bad output (shape {tuple(res.shape)}, min kept {int(kept.min())})")
            kept_median = float(kept.float().median())
            differ = None
            if gpu and not args.no_torch:  # rows whose kept sets differ between the two paths
                ref = torch_path(lambda: process_logits(logits, spec))()
                differ = int(((res > -math.inf) != (ref > -math.inf)).any(dim=1).sum())
                del ref
            del res, kept
            # the floor is re-timed next to every case, so a machine whose load drifts during the
            # run (a shared CPU) still gives each ratio a floor measured under the same conditions
            floor_t = measure(lambda: logits.amax(-1), warmup, repeats, args.min_repeats, budget)
            floor_ms = statistics.median(floor_t) * 1e3
            t = measure(lambda: process_logits(logits, spec), warmup, repeats, args.min_repeats, budget)
            ms = statistics.median(t) * 1e3
            apply_ms = build_ms = apply_dev = torch_ms = torch_dev = None
            specs = [spec] * b if isinstance(spec, SamplerSpec) else spec
            if not args.no_from_specs:
                tb = measure(
                    lambda: SamplerBatch.from_specs(specs, device=device), warmup, repeats, args.min_repeats, budget
                )
                build_ms = statistics.median(tb) * 1e3
            if not args.no_apply_rules:
                sb = SamplerBatch.from_specs(specs, device=device)
                ta = measure(lambda: apply_rules(logits, sb), warmup, repeats, args.min_repeats, budget)
                apply_ms = statistics.median(ta) * 1e3
                apply_dev = dev_ms(ta)
                if gpu and not args.no_torch:
                    tt = measure(torch_path(lambda: apply_rules(logits, sb)), warmup, repeats, args.min_repeats, budget)
                    torch_ms, torch_dev = statistics.median(tt) * 1e3, dev_ms(tt)
            syncs = count_syncs(lambda: process_logits(logits, spec)) if gpu else None
            apply_syncs = count_syncs(lambda: apply_rules(logits, sb)) if gpu and apply_ms is not None else None
            floor_dev = dev_ms(floor_t)
            row = dict(
                rule=name,
                batch=b,
                median_ms=ms,
                floor_ms=floor_ms,
                ratio=ms / floor_ms,
                min_ms=min(t) * 1e3,
                apply_rules_ms=apply_ms,
                from_specs_ms=build_ms,
                apply_rules_dev_ms=apply_dev,
                floor_dev_ms=floor_dev,
                apply_ratio=None if apply_ms is None else apply_ms / floor_ms,
                apply_dev_ratio=None if apply_dev is None or not floor_dev else apply_dev / floor_dev,
                torch_apply_rules_ms=torch_ms,
                torch_apply_rules_dev_ms=torch_dev,
                kept_median=kept_median,
                rows_differing_from_torch=differ,
                n=len(t),
                floor_n=len(floor_t),
                syncs=syncs,
                apply_rules_syncs=apply_syncs,
            )
            results.append(row)
            print(
                f"B={b:4d}  {name:30s} {ms:9.4f} ms  floor {floor_ms:8.4f} ms  x{ms / floor_ms:7.1f}"
                + (f"  apply_rules {apply_ms:9.4f} ms (x{apply_ms / floor_ms:5.1f})" if apply_ms is not None else "")
                + (f" dev {apply_dev:8.4f} ms (floor dev {floor_dev:7.4f})" if apply_dev is not None else "")
                + (f"  torch {torch_ms:8.4f} ms dev {torch_dev:8.4f}" if torch_ms is not None else "")
                + (f"  from_specs {build_ms:8.4f} ms" if build_ms is not None else "")
                + f"  kept {kept_median:g}  n={len(t)}"
                + (f"  differ {differ}" if differ is not None else "")
                + (f"  syncs={syncs}/{apply_syncs}" if syncs is not None else ""),
                flush=True,
            )
        logits = None  # free the [B, V] logits before the next size (the closures above are done)
        if gpu:
            torch.cuda.empty_cache()

    meta["loadavg_at_end"] = _loadavg()
    md = markdown(meta, results, gpu)
    print()
    print(md)
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(results[0].keys()))
        w.writeheader()
        w.writerows(results)
    out.with_suffix(".md").write_text(md + "\n")
    print(f"wrote {out}, {out.with_suffix('.csv')}, {out.with_suffix('.md')}")
    return 0


def _fmt(x, digits=3):
    if x is None:
        return ""
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def markdown(meta: dict, results: list[dict], gpu: bool) -> str:
    dev = f"{meta['gpu']} (CUDA {meta['cuda']})" if gpu else f"{meta['cpu']}, {meta['torch_threads']} threads"
    lines = [
        f"Device: {dev}; host CPU {meta['cpu']} ({meta['cpu_count']} cores); torch {meta['torch']}; "
        f"{meta['date_utc']}; V = {meta['vocab']}, float32, logits {meta['logits']}; "
        f"load average (1/5/15 min) {meta.get('loadavg_at_start')} at start, {meta.get('loadavg_at_end')} at end."
        + (f" Label: {meta['label']}." if meta.get("label") else ""),
        "",
        "| rule | B | median ms | floor ms | ratio to floor | apply_rules ms (batch prebuilt) "
        + (
            "| x floor | apply_rules device ms | floor device ms | device x floor | torch path apply_rules ms "
            "| torch path device ms "
            if gpu
            else ""
        )
        + "| from_specs ms | kept tokens/row (median) | n"
        + (" | host syncs/call (process_logits / apply_rules) |" if gpu else " |"),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---:" + (" | ---: " * 7 + "|" if gpu else " |"),
    ]
    for r in results:
        cells = [
            r["rule"],
            str(r["batch"]),
            _fmt(r["median_ms"]),
            _fmt(r["floor_ms"]),
            _fmt(r["ratio"], 1),
            _fmt(r["apply_rules_ms"]),
        ]
        if gpu:
            cells += [
                _fmt(r.get("apply_ratio"), 1),
                _fmt(r.get("apply_rules_dev_ms")),
                _fmt(r.get("floor_dev_ms")),
                _fmt(r.get("apply_dev_ratio"), 1),
                _fmt(r.get("torch_apply_rules_ms")),
                _fmt(r.get("torch_apply_rules_dev_ms")),
            ]
        cells += [
            _fmt(r.get("from_specs_ms")),
            "" if r["kept_median"] is None else f"{r['kept_median']:g}",
            str(r["n"]),
        ]
        if gpu:
            cells.append(f"{_fmt(r['syncs'])} / {_fmt(r['apply_rules_syncs'])}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
