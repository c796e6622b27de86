"""HF transformers engine: the sss rules as a `LogitsProcessor`, and batched generation.

`SamplerLogitsProcessor` is the public piece: pass it to `model.generate(...,
logits_processor=[...])` with `do_sample=True` and HF samples from the masked
logits. `HFGenerator` is what sss runs: greedy-mode `generate` with two
processors, the rules and then a seeded per-row draw (`sss.samplers.draw`),
so every row has its own reproducible random stream and none of HF's own
warpers can run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import torch
from transformers import GenerationConfig, LogitsProcessor

from sss.samplers import SamplerBatch, SamplerSpec, apply_rules
from sss.samplers.draw import draw

log = logging.getLogger(__name__)


class SamplerLogitsProcessor(LogitsProcessor):
    """Applies sss rules to HF's `scores` [B, V]: one spec for all rows, or one per row."""

    def __init__(self, spec: SamplerSpec | Sequence[SamplerSpec]):
        self._specs = spec
        self._batch: SamplerBatch | None = None

    def _batch_for(self, rows: int, device: torch.device) -> SamplerBatch:
        if self._batch is None or self._batch.rows != rows or self._batch.top_k.device != device:
            if isinstance(self._specs, SamplerSpec):
                specs = [self._specs] * rows
            else:
                specs = list(self._specs)
                if len(specs) != rows:
                    raise ValueError(f"{len(specs)} sampler specs for a batch of {rows} rows")
            self._batch = SamplerBatch.from_specs(specs, device=device)
        return self._batch

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        return apply_rules(scores, self._batch_for(scores.shape[0], scores.device))


class SeededDraw(LogitsProcessor):
    """Draws each row's token with its own seed and leaves only that token finite.

    Used with greedy decoding, so HF's argmax picks exactly the drawn token.
    Greedy rows (one kept token) are unaffected by the noise.
    """

    def __init__(self, seeds: Sequence[int], prompt_width: int):
        self.seeds = torch.tensor(list(seeds), dtype=torch.int64)
        self.prompt_width = prompt_width

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        step = input_ids.shape[1] - self.prompt_width
        token = draw(scores, self.seeds.to(scores.device), step)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, token.unsqueeze(1), 0.0)


@dataclass
class Generation:
    text: str
    new_tokens: int
    stopped: str  # "stop" (stop string or EOS) or "length"


def neutral_generation_config(model) -> GenerationConfig:
    """A config with no penalties, warpers or defaults taken from the checkpoint.

    A checkpoint's generation_config.json (Qwen's has repetition_penalty and
    top_k, for example) would otherwise be merged into every generate() call.
    Only the special token ids are kept.
    """
    old = model.generation_config
    return GenerationConfig(
        bos_token_id=old.bos_token_id,
        eos_token_id=old.eos_token_id,
        pad_token_id=old.pad_token_id if old.pad_token_id is not None else old.eos_token_id,
    )


class HFGenerator:
    """Loads a causal LM with transformers and generates with sss rules and per-row seeds."""

    def __init__(self, path: str, dtype: str = "bfloat16", device: str = "cpu",
                 trust_remote_code: bool = False):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(
            path, dtype=getattr(torch, dtype), trust_remote_code=trust_remote_code)
        self.model.to(self.device).eval()
        self.model.generation_config = neutral_generation_config(self.model)
        if self.model.generation_config.pad_token_id is None:
            self.model.generation_config.pad_token_id = self.tokenizer.pad_token_id

    @torch.inference_mode()
    def generate(self, prompts: Sequence[str], specs: SamplerSpec | Sequence[SamplerSpec],
                 seeds: Sequence[int], max_new_tokens: int, stop: Sequence[str]) -> list[Generation]:
        enc = self.tokenizer(list(prompts), return_tensors="pt", padding=True,
                             add_special_tokens=False).to(self.device)
        width = enc["input_ids"].shape[1]
        processors = [SamplerLogitsProcessor(specs), SeededDraw(seeds, width)]
        out = self.model.generate(
            **enc,
            do_sample=False,
            max_new_tokens=max_new_tokens,
            logits_processor=processors,
            stop_strings=list(stop) or None,
            tokenizer=self.tokenizer,
        )
        results = []
        eos = self.model.generation_config.eos_token_id
        eos = set(eos if isinstance(eos, list) else [eos])
        for row in out[:, width:].tolist():
            tokens = _strip_padding(row, self.model.generation_config.pad_token_id, eos)
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            cut = cut_at_stop(text, stop)
            ended = cut is not None or (len(tokens) < len(row)) or (tokens and tokens[-1] in eos)
            results.append(Generation(text=text if cut is None else text[:cut],
                                      new_tokens=len(tokens),
                                      stopped="stop" if ended else "length"))
        return results


def _strip_padding(row: list[int], pad: int | None, eos: set) -> list[int]:
    """Generated ids up to and including the first EOS (the rest is padding)."""
    for i, tok in enumerate(row):
        if tok in eos:
            return row[: i + 1]
    return row


def cut_at_stop(text: str, stop: Sequence[str]) -> int | None:
    """Index of the earliest stop string in text, or None."""
    hits = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return min(hits) if hits else None
