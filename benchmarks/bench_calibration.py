#!/usr/bin/env python3
"""Calibration speed: grid + fit over 10^7 synthetic traced tokens, against reading the seed's
JSONL format in the same run; and the tracing throughput of each engine on the embedded model.

1. Grid + fit. N synthetic steps (default 10^7, K = 20: p_max, gold rank, top-K probabilities)
   are written to traces.parquet with sss's own writer; then timed: `build_grid` streaming
   over the file + `summarize` (fit, k lists). Baseline, in the same run: the paper code's
   per-token JSONL (one object per token, `{"gt": id, "top_ids": [...], "top_probs":
   ["0.93210000", ...]}`, probabilities as 8-decimal strings) for the first `--jsonl-tokens`
   of the same steps, read line by line with `json.loads` and `float()` into arrays (the
   reading only; the grid from those arrays is not timed). Its per-token time is extrapolated
   linearly to N and divided by the grid + fit time: the ratio. A 10^7-token JSONL file would
   be ~3 GB, which is why the baseline reads a slice.
2. Tracing: `--trace-docs` GSM8K train answers (chat template) traced by each engine
   (hf, torchtune, vllm) on SmolLM2-135M-Instruct, float32, CPU; answer tokens per second of
   the trace call (model loading excluded), and process CPU seconds beside it (the machine is
   shared: tokens per CPU second compare work when other jobs take the cores).

    .venv/bin/python benchmarks/bench_calibration.py
    .venv/bin/python benchmarks/bench_calibration.py --tokens 1000000 --engines hf --trace-docs 8

Writes JSON (--out) and prints Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")

import numpy as np  # noqa: E402

from machine import cpu_name  # noqa: E402 -- benchmarks/machine.py (this script's folder is on sys.path)


def synthetic_steps(n: int, k: int, seed: int = 0):
    """Plausible steps, vectorised: p_max ~ Beta(2, 0.7), the rest decaying geometrically at a
    random rate per step; gold rank 1 with probability ~p_max, else geometric."""
    from sss.calibration.stats import StepColumns

    rng = np.random.default_rng(seed)
    p_max = rng.beta(2.0, 0.7, n).astype(np.float32)
    decay = rng.uniform(0.2, 0.8, n).astype(np.float32)
    top = np.empty((n, k), np.float32)
    top[:, 0] = p_max
    tail = (1 - p_max) * (1 - decay)  # second token's probability, then * decay per rank
    top[:, 1] = np.minimum(tail, p_max)
    for r in range(2, k):
        top[:, r] = top[:, r - 1] * decay
    rank = np.where(rng.random(n) < p_max, 1, 2 + rng.geometric(0.35, n) - 1).astype(np.int32)
    gold = np.where(rank <= k, top[np.arange(n), np.minimum(rank, k) - 1], 1e-6).astype(np.float32)
    return StepColumns(
        doc_id=np.arange(n, dtype=np.int64) // 150,
        position=(np.arange(n) % 150).astype(np.int32),
        token_id=rng.integers(0, 49152, n, dtype=np.int32),
        rank=rank,
        prob=gold,
        p_max=p_max,
        top_ids=np.zeros((n, k), np.int32),
        top_probs=top,
    )


def write_jsonl(steps, n: int, path: Path) -> None:
    with open(path, "w") as fh:
        for i in range(n):
            fh.write(
                json.dumps(
                    {
                        "gt": int(steps.token_id[i]),
                        "top_ids": steps.top_ids[i].tolist(),
                        "top_probs": [f"{p:.8f}" for p in steps.top_probs[i].tolist()],
                    }
                )
                + "\n"
            )


def read_jsonl(path: Path, k: int):
    gold, top = [], []
    with open(path) as fh:
        for line in fh:
            record = json.loads(line)
            gold.append(record["gt"])
            top.append([float(p) for p in record["top_probs"]])
    return np.asarray(gold, np.int64), np.asarray(top, np.float32).reshape(-1, k)


def bench_grid(n: int, k: int, jsonl_tokens: int, folder: Path) -> dict:
    from sss.calibration.artifact import summarize
    from sss.calibration.fit import DEFAULT_THRESHOLDS
    from sss.calibration.grid import build_grid
    from sss.calibration.traces import write_traces

    t = time.perf_counter()
    steps = synthetic_steps(n, k)
    generate_s = time.perf_counter() - t
    t = time.perf_counter()
    write_traces(steps, folder / "traces.parquet")
    write_s = time.perf_counter() - t
    size_mb = (folder / "traces.parquet").stat().st_size / 1e6

    times = []
    for _ in range(3):
        t = time.perf_counter()
        grid = build_grid(folder / "traces.parquet", 10, k)
        summary = summarize(grid, DEFAULT_THRESHOLDS, 10)
        times.append(time.perf_counter() - t)
    grid_fit_s = float(np.median(times))

    write_jsonl(steps, jsonl_tokens, folder / "seed.jsonl")
    jsonl_mb = (folder / "seed.jsonl").stat().st_size / 1e6
    t = time.perf_counter()
    _, top = read_jsonl(folder / "seed.jsonl", k)
    jsonl_s = time.perf_counter() - t
    assert np.allclose(top, steps.top_probs[:jsonl_tokens], atol=1e-8)
    per_token = jsonl_s / jsonl_tokens
    return {
        "tokens": n,
        "top_k": k,
        "generate_s": round(generate_s, 2),
        "write_parquet_s": round(write_s, 2),
        "parquet_mb": round(size_mb, 1),
        "grid_fit_s_runs": [round(x, 3) for x in times],
        "grid_fit_s": round(grid_fit_s, 3),
        "fit": {key: summary["fit"][key] for key in ("a", "b", "r2")},
        "jsonl_tokens": jsonl_tokens,
        "jsonl_mb": round(jsonl_mb, 1),
        "jsonl_read_s": round(jsonl_s, 3),
        "jsonl_read_s_extrapolated": round(per_token * n, 1),
        "ratio_jsonl_read_over_grid_fit": round(per_token * n / grid_fit_s, 1),
    }


def bench_trace(engines: list[str], docs: int, data: Path) -> dict:
    import resource

    from transformers import AutoTokenizer

    from sss.calibration.data import encode, load_examples
    from sss.calibration.tracing import load_engine, trace
    from sss.models import resolve_model_path

    path = resolve_model_path("embedded:smollm2-135m-instruct")
    options = {
        "data": "gsm8k",
        "data_files": str(data),
        "limit": docs,
        "top_k": 20,
        "batch_size": 8,
        "max_length": 2048,
    }
    sequences = encode(load_examples(options), AutoTokenizer.from_pretrained(path), True, 2048)
    tokens = sum(s.n_answer for s in sequences)
    out = {
        "documents": docs,
        "answer_tokens": tokens,
        "all_tokens": sum(len(s.input_ids) for s in sequences),
        "engines": {},
    }
    cpu = lambda: resource.getrusage(resource.RUSAGE_SELF)  # noqa: E731
    for engine in engines:
        model_cfg = {"dtype": "float32", "device": "cpu", "enforce_eager": True, "kv_cache_memory_bytes": 512 << 20}
        t = time.perf_counter()
        loaded = load_engine(engine, path, model_cfg, options)
        load_s = time.perf_counter() - t
        trace(engine, loaded, sequences[:2], options, show_progress=False)  # warm-up
        before, t = cpu(), time.perf_counter()
        steps = trace(engine, loaded, sequences, options, show_progress=False)
        wall = time.perf_counter() - t
        after = cpu()
        cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        assert len(steps) == tokens
        out["engines"][engine] = {
            "load_s": round(load_s, 1),
            "trace_s": round(wall, 2),
            "tokens_per_s": round(tokens / wall, 1),
            "cpu_s": round(cpu_s, 1),
            "tokens_per_cpu_s": round(tokens / cpu_s, 1),
        }
        print(f"  {engine}: {out['engines'][engine]}", flush=True)
        del loaded
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=10_000_000)
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--jsonl-tokens", type=int, default=200_000)
    parser.add_argument("--engines", default="hf,torchtune,vllm")
    parser.add_argument("--trace-docs", type=int, default=16)
    parser.add_argument("--data", default=str(REPO_ROOT.parent / "shared" / "data" / "gsm8k" / "train.jsonl"))
    parser.add_argument("--out", default=str(REPO_ROOT / "benchmarks" / "results" / "calibration_cpu.json"))
    args = parser.parse_args()

    import torch

    result = {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_avg_start": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    with tempfile.TemporaryDirectory(prefix="bench-calibration-") as tmp:
        result["grid"] = bench_grid(args.tokens, args.top_k, args.jsonl_tokens, Path(tmp))
    print(json.dumps(result["grid"], indent=1), flush=True)
    engines = [e for e in args.engines.split(",") if e]
    if engines and args.trace_docs:
        result["trace"] = bench_trace(engines, args.trace_docs, Path(args.data))
    result["load_avg_end"] = os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")

    g = result["grid"]
    print(f"\n{result['cpu']}, {result['cores']} cores, load {result['load_avg_start']}")
    print("| tokens | grid+fit s (median of 3) | JSONL read s (extrapolated) | ratio |")
    print("|---|---|---|---|")
    print(
        f"| {g['tokens']:,} | {g['grid_fit_s']} | {g['jsonl_read_s_extrapolated']} "
        f"({g['jsonl_read_s']} s for {g['jsonl_tokens']:,}) | {g['ratio_jsonl_read_over_grid_fit']}x |"
    )
    if "trace" in result:
        print("\n| engine | answer tokens/s | tokens per CPU s | load s |")
        print("|---|---|---|---|")
        for engine, r in result["trace"]["engines"].items():
            print(f"| {engine} | {r['tokens_per_s']} | {r['tokens_per_cpu_s']} | {r['load_s']} |")


if __name__ == "__main__":
    main()
