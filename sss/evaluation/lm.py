"""lm-eval model classes of sss: generation only, with sss sampler rules and per-sample seeds.

lm-eval hands `generate_until` every request, each repeat as a consecutive copy
of the same instance. Here each copy gets its repeat index and a seed derived
from (run seed, task, doc id, repeat); the engine draws with that seed. A record
per sample (doc id, repeat, seed, token counts) is kept for the run directory,
joined to lm-eval's samples by (doc id, repeat), never by position.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from tqdm import tqdm

from sss.samplers import SamplerSpec

from .seeds import sample_seed

log = logging.getLogger(__name__)

# Generation kwargs a task may set; sampling parameters belong to the sampler config.
TASK_GENERATION_KEYS = {"until", "max_gen_toks"}


class SamplerLM(LM):
    """Shared request handling; engines implement `_generate`."""

    def __init__(self, sampler: dict | SamplerSpec | None = None, seed: int = 0, batch_size: int = 8):
        super().__init__()
        self.spec = sampler if isinstance(sampler, SamplerSpec) else SamplerSpec.from_mapping(sampler or {})
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        self.records: list[dict[str, Any]] = []

    # -- engine interface -------------------------------------------------------
    def _generate(self, prompts: list[str], seeds: list[int], max_new_tokens: int, stop: list[str]):
        raise NotImplementedError

    # -- lm-eval interface ------------------------------------------------------
    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        repeat_of: dict[tuple, int] = defaultdict(int)
        jobs = []
        for position, request in enumerate(requests):
            context, gen_kwargs = request.args
            key = (request.task_name, request.doc_id)
            repeat = repeat_of[key]
            repeat_of[key] += 1
            max_new, stop = self._task_generation(request.task_name, gen_kwargs)
            seed = sample_seed(self.seed, str(request.task_name), int(request.doc_id), repeat)
            jobs.append((position, context, max_new, tuple(stop), request, repeat, seed))

        # Long prompts first (errors early, tighter padding); batches never mix settings.
        jobs.sort(key=lambda j: (j[2], j[3], -len(j[1])))
        results: list[str | None] = [None] * len(jobs)
        bar = tqdm(total=len(jobs), desc="generating", disable=disable_tqdm)
        start = 0
        while start < len(jobs):
            end = start
            while (end < len(jobs) and end - start < self.batch_size
                   and jobs[end][2:4] == jobs[start][2:4]):
                end += 1
            chunk = jobs[start:end]
            outputs = self._generate([j[1] for j in chunk], [j[6] for j in chunk],
                                     chunk[0][2], list(chunk[0][3]))
            for job, gen in zip(chunk, outputs, strict=True):
                position, _, _, _, request, repeat, seed = job
                results[position] = gen.text
                self.records.append({
                    "task": request.task_name, "doc_id": int(request.doc_id), "repeat": repeat,
                    "seed": seed, "new_tokens": gen.new_tokens, "stopped": gen.stopped,
                })
            bar.update(len(chunk))
            start = end
        bar.close()
        return results  # type: ignore[return-value]

    @staticmethod
    def _task_generation(task: str, gen_kwargs: dict) -> tuple[int, list[str]]:
        unknown = set(gen_kwargs) - TASK_GENERATION_KEYS
        if unknown:
            raise ValueError(
                f"task {task} sets generation kwargs {sorted(unknown)}: sampling parameters come "
                f"from the sampler config; a task may set only {sorted(TASK_GENERATION_KEYS)}")
        if "max_gen_toks" not in gen_kwargs:
            raise ValueError(f"task {task} does not set max_gen_toks")
        until = gen_kwargs.get("until") or []
        if isinstance(until, str):
            until = [until]
        return int(gen_kwargs["max_gen_toks"]), list(until)

    # -- chat templates (engines set self.generator, with a .tokenizer, and self._name) ----
    @property
    def tokenizer_name(self) -> str:
        return self._name.replace("/", "__")

    def apply_chat_template(self, chat_history, add_generation_prompt: bool = True) -> str:
        return self.generator.tokenizer.apply_chat_template(
            chat_history, tokenize=False, add_generation_prompt=add_generation_prompt)

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError("sss models only generate (generate_until tasks)")

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError("sss models only generate (generate_until tasks)")


@register_model("sss-hf")
class HFSamplerLM(SamplerLM):
    """`sss-hf`: transformers generation with sss rules (the CPU engine and the reference)."""

    def __init__(self, pretrained: str, sampler: dict | SamplerSpec | None = None, seed: int = 0,
                 batch_size: int = 8, dtype: str = "bfloat16", device: str = "cpu",
                 trust_remote_code: bool = False, **unused):
        super().__init__(sampler=sampler, seed=seed, batch_size=batch_size)
        if unused:
            raise TypeError(f"sss-hf got unknown arguments {sorted(unused)}")
        from sss.engines.hf import HFGenerator

        self.generator = HFGenerator(pretrained, dtype=dtype, device=device,
                                     trust_remote_code=trust_remote_code)
        self._name = pretrained

    def _generate(self, prompts, seeds, max_new_tokens, stop):
        return self.generator.generate(prompts, self.spec, seeds, max_new_tokens, stop)
