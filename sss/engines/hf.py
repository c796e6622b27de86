"""HF transformers engine (`engine=hf`): the sss rules as a `LogitsProcessor`, and `HFEngine`.

`SamplerLogitsProcessor` is the public piece for people who call `model.generate(...,
logits_processor=[...])` themselves (with `do_sample=True` HF samples from the masked logits).

`HFEngine` is what sss runs. Its default loop (`loop: sss`) is sss's own decode loop
(`sss.engines.decode_loop`) over transformers' model forward, with the KV memory and attention
of `sss.engines.hf_kv`: shared-prefix reuse, continuous batching, seeded per-request draws and
per-token traces. `loop: generate` is the old path, transformers' `generate` in greedy mode
with two processors, the rules and then a seeded per-row draw: the baseline of
`benchmarks/bench_engines.py`, and a fallback for architectures the sss loop does not cover
(sliding-window attention).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from transformers import GenerationConfig, LogitsProcessor

from sss.samplers import SamplerBatch, SamplerSpec, apply_rules
from sss.samplers.draw import draw

from . import decode_loop, hf_kv
from .base import Generation, Request, cut_at_stop

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


class HFEngine:
    """`engine=hf`: a transformers causal LM, generating with sss rules and per-request seeds."""

    def __init__(
        self,
        path: str,
        dtype: str = "float32",
        device: str = "cpu",
        trust_remote_code: bool = False,
        loop: str = "sss",
        max_rows: int = 32,
        kv_cache_gib: float = 4.0,
        batch_size: int = 16,
        name: str = "hf",
    ):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if loop not in ("sss", "generate"):
            raise ValueError(f"engine.loop = {loop!r}: expected 'sss' or 'generate'")
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        extra = {}
        if loop == "sss":
            hf_kv.register()
            extra["attn_implementation"] = hf_kv.ATTENTION_NAME
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=getattr(torch, dtype), trust_remote_code=trust_remote_code, **extra
        )
        self._attach(
            model.to(device),
            tokenizer,
            device=device,
            loop=loop,
            max_rows=max_rows,
            kv_cache_gib=kv_cache_gib,
            batch_size=batch_size,
            name=name,
        )
        self.model_name = path

    @classmethod
    def from_loaded(
        cls,
        model,
        tokenizer,
        device: str = "cpu",
        loop: str = "sss",
        max_rows: int = 32,
        kv_cache_gib: float = 4.0,
        batch_size: int = 16,
    ) -> HFEngine:
        """An engine around a model already in memory (its attention set to
        `hf_kv.ATTENTION_NAME` for the sss loop), e.g. randomly initialised for a benchmark."""
        engine = cls.__new__(cls)
        engine._attach(
            model,
            tokenizer,
            device=device,
            loop=loop,
            max_rows=max_rows,
            kv_cache_gib=kv_cache_gib,
            batch_size=batch_size,
            name="hf",
        )
        engine.model_name = type(model).__name__
        return engine

    def _attach(self, model, tokenizer, device, loop, max_rows, kv_cache_gib, batch_size, name) -> None:
        self.name, self.loop = name, loop
        self.max_rows, self.kv_cache_gib, self.batch_size = max_rows, kv_cache_gib, batch_size
        self.device = torch.device(device)
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = model.eval()
        self.model.generation_config = neutral_generation_config(self.model)
        if self.model.generation_config.pad_token_id is None:
            self.model.generation_config.pad_token_id = self.tokenizer.pad_token_id
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = frozenset(eos if isinstance(eos, list) else [] if eos is None else [eos])
        text_config = self.model.config.get_text_config()
        self.context_length = getattr(text_config, "max_position_embeddings", None)
        if loop == "sss":
            heads = text_config.num_attention_heads
            self.kv = hf_kv.SlotKV(
                layers=text_config.num_hidden_layers,
                kv_heads=getattr(text_config, "num_key_value_heads", None) or heads,
                head_dim=getattr(text_config, "head_dim", None) or text_config.hidden_size // heads,
                dtype=self.model.dtype,
                device=self.device,
            )

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    @torch.inference_mode()
    def generate(
        self, requests: Sequence[Request], trace_top_k: int | None = None, progress: bool = True
    ) -> list[Generation]:
        if self.loop == "generate":
            if trace_top_k is not None:
                raise ValueError("engine.loop=generate records no token traces (use engine.loop=sss)")
            return self._generate_with_hf(requests, progress)
        max_kv_tokens = int(self.kv_cache_gib * 2**30) // self.kv.bytes_per_token
        return decode_loop.run(self, requests, self.max_rows, max_kv_tokens, trace_top_k, progress)

    # -- the decode loop's Backend --------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def allocate(self, rows: int, slot_len: int) -> None:
        self.kv.allocate(rows, slot_len)

    def copy_slot(self, src: int, dst: int, length: int) -> None:
        self.kv.copy_slot(src, dst, length)

    def drop_prefix(self, key) -> None:
        self.kv.drop_prefix(key)

    def _forward(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        out = self.model(input_ids=ids, position_ids=positions, use_cache=False, logits_to_keep=1, sss_kv=self.kv)
        return out.logits[:, -1]

    def encode_prefix(self, key, ids: Sequence[int]) -> None:
        self.kv.begin_prefix(key, len(ids))
        self._forward(
            torch.tensor([list(ids)], device=self.device), torch.arange(len(ids), device=self.device).unsqueeze(0)
        )

    def prefill(self, slot: int, prefix, ids: Sequence[int]) -> torch.Tensor:
        start = self.kv.prefix_length(prefix)
        self.kv.begin_prefill(slot, prefix, len(ids))
        positions = torch.arange(start, start + len(ids), device=self.device).unsqueeze(0)
        return self._forward(torch.tensor([list(ids)], device=self.device), positions)[0]

    def decode_step(self, tokens: torch.Tensor, prefixes, lengths) -> torch.Tensor:
        self.kv.begin_decode(prefixes, lengths)
        positions = torch.tensor(
            [self.kv.prefix_length(p) + n for p, n in zip(prefixes, lengths)], device=self.device
        ).unsqueeze(1)
        return self._forward(tokens.unsqueeze(1), positions)

    # -- the old path: transformers' generate, a fixed batch at a time --------------------
    def _generate_with_hf(self, requests: Sequence[Request], progress: bool) -> list[Generation]:
        from tqdm import tqdm

        order = sorted(
            range(len(requests)), key=lambda i: (requests[i].max_new_tokens, requests[i].stop, -len(requests[i].prompt))
        )
        results: list[Generation | None] = [None] * len(requests)
        bar = tqdm(total=len(requests), desc="generating", disable=not progress, unit="sample")
        start = 0
        while start < len(order):
            end = start + 1
            first = requests[order[start]]
            while (
                end < len(order)
                and end - start < self.batch_size
                and (requests[order[end]].max_new_tokens, requests[order[end]].stop)
                == (first.max_new_tokens, first.stop)
            ):
                end += 1
            chunk = [requests[i] for i in order[start:end]]
            for i, gen in zip(order[start:end], self._hf_batch(chunk)):
                results[i] = gen
            bar.update(len(chunk))
            start = end
        bar.close()
        return results  # type: ignore[return-value]

    def _hf_batch(self, chunk: Sequence[Request]) -> list[Generation]:
        enc = self.tokenizer([r.prompt for r in chunk], return_tensors="pt", padding=True, add_special_tokens=False).to(
            self.device
        )
        width = enc["input_ids"].shape[1]
        stop = list(chunk[0].stop)
        processors = [SamplerLogitsProcessor([r.spec for r in chunk]), SeededDraw([r.seed for r in chunk], width)]
        out = self.model.generate(
            **enc,
            do_sample=False,
            max_new_tokens=chunk[0].max_new_tokens,
            logits_processor=processors,
            stop_strings=stop or None,
            tokenizer=self.tokenizer,
        )
        results = []
        for row in out[:, width:].tolist():
            tokens = _strip_padding(row, self.eos_ids)
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            cut = cut_at_stop(text, stop)
            ended = cut is not None or (len(tokens) < len(row)) or (tokens and tokens[-1] in self.eos_ids)
            results.append(
                Generation(
                    text=text if cut is None else text[:cut],
                    new_tokens=len(tokens),
                    stopped="stop" if ended else "length",
                )
            )
        return results


def _strip_padding(row: list[int], eos: frozenset) -> list[int]:
    """Generated ids up to and including the first EOS (the rest is padding)."""
    for i, tok in enumerate(row):
        if tok in eos:
            return row[: i + 1]
    return row
