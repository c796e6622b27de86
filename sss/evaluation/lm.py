"""The lm-eval model class of sss (`sss`): generation only, any engine, per-sample seeds.

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
from collections.abc import Callable

from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from sss.engines.base import Generator, Request
from sss.samplers import SamplerSpec

from .seeds import sample_seed

log = logging.getLogger(__name__)

# Generation kwargs a task may set; sampling parameters belong to the sampler config.
TASK_GENERATION_KEYS = {"until", "max_gen_toks"}


@register_model("sss")
class SamplerLM(LM):
    """Drives any `sss.engines.base.Generator`: every request (every repeat) becomes one
    `Request` with its own seed, the whole task goes to the engine at once (the engine
    schedules it), and each generation is recorded under (task, doc id, repeat).

    ``trace_sink(lm_eval_task, doc_id, repeat, trace)`` receives each generation's per-token
    trace when ``trace_top_k`` is not None (0: the per-token fields, N: plus the top N).
    """

    def __init__(
        self,
        generator: Generator,
        sampler: dict | SamplerSpec | None = None,
        seed: int = 0,
        trace_top_k: int | None = None,
        trace_sink: Callable[[str, int, int, Any], None] | None = None,
    ):
        super().__init__()
        self.generator = generator
        self.spec = sampler if isinstance(sampler, SamplerSpec) else SamplerSpec.from_mapping(sampler or {})
        self.seed = int(seed)
        self.trace_top_k = trace_top_k
        self.trace_sink = trace_sink
        self.records: list[dict[str, Any]] = []

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        repeat_of: dict[tuple, int] = defaultdict(int)
        keys, batch = [], []
        for request in requests:
            context, gen_kwargs = request.args
            key = (request.task_name, int(request.doc_id))
            repeat = repeat_of[key]
            repeat_of[key] += 1
            max_new, stop = self._task_generation(request.task_name, gen_kwargs)
            seed = sample_seed(self.seed, str(request.task_name), key[1], repeat)
            keys.append((*key, repeat, seed))
            batch.append(
                Request(
                    prompt=context,
                    spec=self.spec,
                    seed=seed,
                    max_new_tokens=max_new,
                    stop=tuple(stop),
                    group=request.task_name,
                )
            )
        generations = self.generator.generate(batch, trace_top_k=self.trace_top_k, progress=not disable_tqdm)
        for (task, doc_id, repeat, seed), gen in zip(keys, generations, strict=True):
            self.records.append(
                {
                    "task": task,
                    "doc_id": doc_id,
                    "repeat": repeat,
                    "seed": seed,
                    "new_tokens": gen.new_tokens,
                    "stopped": gen.stopped,
                }
            )
            if self.trace_sink is not None and gen.trace is not None:
                self.trace_sink(task, doc_id, repeat, gen.trace)
        return [gen.text for gen in generations]

    @staticmethod
    def _task_generation(task: str, gen_kwargs: dict) -> tuple[int, list[str]]:
        unknown = set(gen_kwargs) - TASK_GENERATION_KEYS
        if unknown:
            raise ValueError(
                f"task {task} sets generation kwargs {sorted(unknown)}: sampling parameters come "
                f"from the sampler config; a task may set only {sorted(TASK_GENERATION_KEYS)}"
            )
        if "max_gen_toks" not in gen_kwargs:
            raise ValueError(f"task {task} does not set max_gen_toks")
        until = gen_kwargs.get("until") or []
        if isinstance(until, str):
            until = [until]
        return int(gen_kwargs["max_gen_toks"]), list(until)

    # -- chat templates ---------------------------------------------------------------------
    @property
    def tokenizer_name(self) -> str:
        return f"{self.generator.name}__{getattr(self.generator, 'model_name', 'model')}".replace("/", "__")

    def apply_chat_template(self, chat_history, add_generation_prompt: bool = True) -> str:
        return self.generator.apply_chat_template(chat_history, add_generation_prompt=add_generation_prompt)

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError("sss models only generate (generate_until tasks)")

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError("sss models only generate (generate_until tasks)")
