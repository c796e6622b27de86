"""The one interface every engine implements: `Generator.generate(requests) -> generations`.

A `Request` is one sample to draw: a prompt, the sampler spec and seed of that sample,
and the task's generation settings. An engine returns one `Generation` per request, in
the order given, with the text (cut at the first stop string), the number of generated
tokens, why it stopped, and, when the caller asks for it, the per-token `TokenTrace`.

Trace fields are the same for every engine and describe the model's *raw* distribution at
each step (before temperature and rules), except `kept`, the size of the kept set after the
rules: what was sampled from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable
from collections.abc import Hashable, Sequence

import numpy as np

from sss.samplers import SamplerSpec

# Why a generation ended: a stop string or the end-of-sequence token, or max_new_tokens.
STOPPED = ("stop", "length")


@dataclass(frozen=True)
class Request:
    """One sample: prompt, rules and seed, and the task's generation settings."""

    prompt: str
    spec: SamplerSpec
    seed: int
    max_new_tokens: int
    stop: tuple[str, ...] = ()
    # Requests of one group share a prompt prefix worth encoding once (the few-shot
    # exemplars of one lm-eval task); engines may ignore it.
    group: Hashable = None


@dataclass
class TokenTrace:
    """Per-token data of one generation, as columns: entry i is generated token i (step i).

    token_ids     int64    the chosen token
    logprob       float32  log p(chosen) under the raw distribution (natural log)
    rank          int32    1 + number of tokens with a strictly larger raw logit (1 = argmax;
                           tied tokens share the better rank)
    p_max         float32  the raw distribution's largest probability
    entropy       float32  the raw distribution's entropy, in nats
    kept          int32    tokens left after temperature and rules (what was sampled from)
    text_end      int32    length (characters) of the completion text up to and including this
                           token, so a step can be placed in the response (e.g. before the
                           answer phrase); the text is the one before the stop-string cut
    top_ids       int64 [n, N]    the N most probable tokens, best first (N = top_k asked for)
    top_logprobs  float32 [n, N]  their raw log-probabilities
    """

    token_ids: np.ndarray
    logprob: np.ndarray
    rank: np.ndarray
    p_max: np.ndarray
    entropy: np.ndarray
    kept: np.ndarray
    text_end: np.ndarray
    top_ids: np.ndarray | None = None
    top_logprobs: np.ndarray | None = None

    COLUMNS = ("token_ids", "logprob", "rank", "p_max", "entropy", "kept", "text_end")

    def __len__(self) -> int:
        return len(self.token_ids)

    def truncate(self, n: int) -> TokenTrace:
        """The first n steps."""
        return TokenTrace(
            **{
                name: (None if getattr(self, name) is None else getattr(self, name)[:n])
                for name in (*self.COLUMNS, "top_ids", "top_logprobs")
            }
        )


@dataclass
class Generation:
    text: str  # the completion, cut before the first stop string
    new_tokens: int  # tokens generated, the stop string's tokens and EOS included
    stopped: str  # "stop" (stop string or EOS) or "length" (max_new_tokens)
    trace: TokenTrace | None = None  # when the caller asked for one; len(trace) == new_tokens
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Generator(Protocol):
    """What an engine is to sss: built from `conf/engine/<name>.yaml` by Hydra's instantiate."""

    name: str

    def generate(
        self, requests: Sequence[Request], trace_top_k: int | None = None, progress: bool = True
    ) -> list[Generation]:
        """One generation per request, in order. `trace_top_k=None` records no trace; 0 records
        the per-token fields; N > 0 adds the N most probable tokens of every step."""
        ...

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        """The model's chat template applied to lm-eval's chat history."""
        ...


def cut_at_stop(text: str, stop: Sequence[str]) -> int | None:
    """Index of the earliest stop string in text, or None."""
    hits = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return min(hits) if hits else None
