"""`engine=dummy`: a weightless engine for tests and dry runs (as lm-eval's `dummy` model serves
lm-eval), run through the real decode loop, sss rules, seeded draws and traces.

Its "model" is a tiny vocabulary of answer-like pieces whose logits at each step are a pure
function of (vocab_seed, prompt, tokens generated so far): a hash of those seeds a normal
draw. So the same request always gives the same text, whatever shares its batch; different
seeds give different texts; rules act on real distributions (greedy keeps the argmax, min-p
cuts the tail); and texts sometimes end in "The answer is N." that tasks can score. An
end-of-sequence token grows likelier with every step, so generations stay short.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch

from . import decode_loop
from .base import Generation, Request

VOCAB = (
    "<eos>",
    " The answer is",
    " so",
    " we",
    " add",
    " step",
    " then",
    ".",
    "\n",
    *(f" {d}" for d in range(10)),
    " 12",
    " 42",
)
EOS = 0
_MASK = (1 << 63) - 1


def _fold(state: int, ids: Sequence[int]) -> int:
    """A rolling hash: folding a prompt in two pieces equals folding it whole, so the state never
    depends on where the decode loop splits a shared prefix from a prompt's own suffix."""
    for i in ids:
        state = (state * 6364136223846793005 + i + 1442695040888963407) & _MASK
    return state


class DummyEngine:
    """A `Generator` with no weights (see the module doc)."""

    context_length = None
    eos_ids = frozenset({EOS})

    def __init__(
        self,
        path: str = "dummy",
        dtype: str = "float32",
        trust_remote_code: bool = False,
        vocab_seed: int = 0,
        max_rows: int = 32,
        name: str = "dummy",
    ):
        self.name, self.model_name = name, "dummy"
        self.vocab_seed, self.max_rows = int(vocab_seed), int(max_rows)
        self.device = torch.device("cpu")
        self._prefixes: dict[Hashable, int] = {}
        self._slots: list[tuple[int, int]] = []  # (state, tokens generated) per slot

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        text = "".join(f"<{m['role']}>{m['content']}\n" for m in messages)
        return text + ("<assistant>" if add_generation_prompt else "")

    def generate(
        self, requests: Sequence[Request], trace_top_k: int | None = None, progress: bool = True
    ) -> list[Generation]:
        return decode_loop.run(
            self,
            requests,
            self.max_rows,
            max_kv_tokens=2**62,
            trace_top_k=trace_top_k,
            progress=progress,
            desc="generating (dummy)",
        )

    # -- the decode loop's Backend ---------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))  # prompt "tokens": bytes (they are only hashed)

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(VOCAB[i] for i in ids if i != EOS)

    def allocate(self, rows: int, slot_len: int) -> None:
        self._slots = [(0, 0)] * rows

    def encode_prefix(self, key: Hashable, ids: Sequence[int]) -> None:
        self._prefixes[key] = _fold(self.vocab_seed, ids)

    def drop_prefix(self, key: Hashable) -> None:
        self._prefixes.pop(key, None)

    def prefill(self, slot: int, prefix: Hashable, ids: Sequence[int]) -> torch.Tensor:
        start = self._prefixes[prefix] if prefix is not None else self.vocab_seed
        self._slots[slot] = (_fold(start, ids), 0)
        return self._logits([self._slots[slot]])[0]

    def copy_slot(self, src: int, dst: int, length: int) -> None:
        self._slots[dst] = self._slots[src]

    def decode_step(self, tokens: torch.Tensor, prefixes, lengths) -> torch.Tensor:
        for row, token in enumerate(tokens.tolist()):
            state, step = self._slots[row]
            self._slots[row] = (_fold(state, [token]), step + 1)
        return self._logits(self._slots[: len(tokens)])

    def _logits(self, slots: list[tuple[int, int]]) -> torch.Tensor:
        out = torch.empty(len(slots), len(VOCAB))
        for row, (state, step) in enumerate(slots):
            out[row] = torch.randn(len(VOCAB), generator=torch.Generator().manual_seed(state)) * 2.0
            out[row, EOS] += 0.25 * step - 2.0  # end of sequence grows likelier with every token
        return out
