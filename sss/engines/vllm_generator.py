"""vLLM generation with sss rules, one seed per request, and per-token data for tracing.

`VLLMGenerator` is what the `sss-vllm` lm-eval model runs: a `vllm.LLM` with
`SamplerLogitsProcessor`, each prompt one request carrying the spec and its own seed
(``SamplingParams(seed=...)``: vLLM gives a seeded request its own random generator, so a
request's draws do not depend on what else is in the batch). Prompts are tokenized
without special tokens, as the HF engine does (a chat template brings its own).

Per-token data: with ``logprobs=k`` every generated token comes back with its logprob,
its rank (1 = most probable) and the k most probable tokens with their logprobs
(`TokenTrace`). vLLM's default ``logprobs_mode="raw_logprobs"`` reports the model's own
distribution, before any logits processor: what calibration and token traces want (the
rank of the chosen token under the model). ``logprobs_mode="processed_logprobs"`` reports
the distribution that was sampled from, after the sss rules (temperature-scaled, excluded
tokens at -inf and the kept ones renormalised).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Sequence

from sss.engines.hf import Generation
from sss.samplers import SamplerSpec


@dataclass
class TokenTrace:
    """Per-token data of one generation, one entry per generated token (columns, not rows)."""

    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)    # of the chosen token
    ranks: list[int] = field(default_factory=list)         # of the chosen token, 1 = most probable
    top_ids: list[list[int]] = field(default_factory=list)  # the k most probable, best first
    top_logprobs: list[list[float]] = field(default_factory=list)
    mode: str = "raw_logprobs"                              # vLLM's logprobs_mode


@dataclass
class TracedGeneration(Generation):
    """A `Generation` with per-token data (None when no logprobs were asked for)."""

    tokens: TokenTrace | None = None


def token_trace(token_ids: Sequence[int], logprobs: Any, k: int, mode: str) -> TokenTrace | None:
    """Turn vLLM's per-token logprob dicts (token id -> Logprob) into a `TokenTrace`.

    vLLM returns the top k tokens and, when it is not among them, the chosen one too.
    """
    if logprobs is None:
        return None
    trace = TokenTrace(mode=mode)
    for position, token in enumerate(token_ids):
        step = logprobs[position]
        chosen = step[token]
        trace.token_ids.append(int(token))
        trace.logprobs.append(float(chosen.logprob))
        trace.ranks.append(int(chosen.rank))
        top = sorted(step.items(), key=lambda item: (item[1].rank, -item[1].logprob))[:k]
        trace.top_ids.append([int(t) for t, _ in top])
        trace.top_logprobs.append([float(lp.logprob) for _, lp in top])
    return trace


class VLLMGenerator:
    """Loads a model into `vllm.LLM` with the sss logits processor and generates with per-request seeds.

    ``logits_processor`` replaces `SamplerLogitsProcessor` (a subclass of it, e.g. one that
    records what it sees); other keyword arguments go to `vllm.LLM` as they are.
    """

    def __init__(self, path: str, dtype: str = "bfloat16", seed: int = 0,
                 gpu_memory_utilization: float = 0.9, tensor_parallel_size: int = 1,
                 max_model_len: int | None = None, enforce_eager: bool = False,
                 kv_cache_memory_bytes: int | None = None, trust_remote_code: bool = False,
                 logprobs_mode: str = "raw_logprobs", logits_processor: type | None = None,
                 **llm_kwargs: Any):
        # A research run has no business reporting usage to anyone.
        os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
        os.environ.setdefault("VLLM_DO_NOT_TRACK", "1")
        from vllm import LLM

        from sss.engines.vllm import SamplerLogitsProcessor

        self.logprobs_mode = logprobs_mode
        # newer vLLM settings: passed only when they differ from the old behaviour
        if kv_cache_memory_bytes is not None:
            llm_kwargs["kv_cache_memory_bytes"] = int(kv_cache_memory_bytes)
        if logprobs_mode != "raw_logprobs":
            llm_kwargs["logprobs_mode"] = logprobs_mode
        self.llm = LLM(
            model=path, tokenizer=path, dtype=dtype, seed=seed,
            gpu_memory_utilization=gpu_memory_utilization,
            tensor_parallel_size=tensor_parallel_size, max_model_len=max_model_len,
            enforce_eager=enforce_eager, trust_remote_code=trust_remote_code,
            logits_processors=[logits_processor or SamplerLogitsProcessor],
            # the checkpoint's generation_config.json must not set defaults behind our back
            generation_config="vllm",
            **llm_kwargs,
        )
        self.tokenizer = self.llm.get_tokenizer()

    def generate(self, prompts: Sequence[str], specs: SamplerSpec | Sequence[SamplerSpec],
                 seeds: Sequence[int], max_new_tokens: int, stop: Sequence[str],
                 logprobs: int | None = None) -> list[TracedGeneration]:
        """One generation per prompt; ``logprobs=k`` (0 for the chosen token alone) adds per-token data."""
        from sss.engines.vllm import sampling_params

        prompts = list(prompts)
        specs = [specs] * len(prompts) if isinstance(specs, SamplerSpec) else list(specs)
        seeds = list(seeds)
        if not len(specs) == len(seeds) == len(prompts):
            raise ValueError(f"{len(prompts)} prompts, {len(specs)} specs and {len(seeds)} seeds")
        requests = [{"prompt_token_ids": self.tokenizer(p, add_special_tokens=False)["input_ids"]}
                    for p in prompts]
        params = [sampling_params(spec, seed=int(seed), max_tokens=max_new_tokens,
                                  stop=list(stop), logprobs=logprobs, skip_special_tokens=True)
                  for spec, seed in zip(specs, seeds)]
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        results = []
        for out in outputs:
            completion = out.outputs[0]
            results.append(TracedGeneration(
                text=completion.text,
                new_tokens=len(completion.token_ids),
                stopped="stop" if completion.finish_reason == "stop" else str(completion.finish_reason),
                tokens=token_trace(completion.token_ids, completion.logprobs, logprobs or 0,
                                   self.logprobs_mode) if logprobs is not None else None,
            ))
        return results
