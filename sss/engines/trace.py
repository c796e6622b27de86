"""Per-token trace data from one decoding step's logits, batched (no per-row Python).

The HF and dummy engines call `step_trace` with the raw logits the model produced and the
logits the rules left (-inf outside the kept set); the vLLM engine builds the same fields
from vLLM's logprobs and its logits processor. Field meanings: `sss.engines.base.TokenTrace`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .base import TokenTrace


@dataclass
class StepTrace:
    """One step's fields for n rows, on the host."""

    logprob: np.ndarray
    rank: np.ndarray
    p_max: np.ndarray
    entropy: np.ndarray
    kept: np.ndarray
    top_ids: np.ndarray | None
    top_logprobs: np.ndarray | None


def step_trace(raw: torch.Tensor, ruled: torch.Tensor, chosen: torch.Tensor, top_k: int) -> StepTrace:
    """Fields of the chosen tokens `chosen` [n] under the raw logits `raw` [n, V].

    Costs a handful of passes over [n, V] in float32 (log-softmax, two reductions, one
    comparison count), small beside the model's own step.
    """
    z = raw.float()
    logp = torch.log_softmax(z, dim=-1)
    chosen_logit = z.gather(1, chosen.unsqueeze(1))
    # tied tokens share the better rank: 1 + tokens with a strictly larger logit
    rank = (z > chosen_logit).sum(dim=-1) + 1
    p = logp.exp()
    # p * logp is 0 for p = 0 (logp = -inf would give NaN)
    entropy = -torch.where(p > 0, p * logp, torch.zeros_like(p)).sum(dim=-1)
    kept = torch.isfinite(ruled).sum(dim=-1)
    fields = [logp.gather(1, chosen.unsqueeze(1)).squeeze(1), rank, logp.amax(dim=-1).exp(), entropy, kept]
    top_ids = top_logprobs = None
    if top_k:
        top = torch.topk(logp, min(top_k, logp.shape[-1]), dim=-1)
        top_ids, top_logprobs = top.indices.cpu().numpy(), top.values.cpu().numpy()
    logprob, rank, p_max, entropy, kept = (f.cpu().numpy() for f in fields)
    return StepTrace(
        logprob.astype(np.float32),
        rank.astype(np.int32),
        p_max.astype(np.float32),
        entropy.astype(np.float32),
        kept.astype(np.int32),
        top_ids,
        top_logprobs,
    )


class TraceBuilder:
    """Collects one generation's steps and hands back a `TokenTrace`."""

    def __init__(self, top_k: int):
        self.top_k = top_k
        self.columns: dict[str, list] = {name: [] for name in TokenTrace.COLUMNS}
        self.top_ids: list[np.ndarray] = []
        self.top_logprobs: list[np.ndarray] = []

    def add(self, token: int, text_end: int, step: StepTrace, row: int) -> None:
        c = self.columns
        c["token_ids"].append(token)
        c["logprob"].append(step.logprob[row])
        c["rank"].append(step.rank[row])
        c["p_max"].append(step.p_max[row])
        c["entropy"].append(step.entropy[row])
        c["kept"].append(step.kept[row])
        c["text_end"].append(text_end)
        if self.top_k:
            self.top_ids.append(step.top_ids[row])
            self.top_logprobs.append(step.top_logprobs[row])

    def build(self) -> TokenTrace:
        c = self.columns
        dtypes = {
            "token_ids": np.int64,
            "logprob": np.float32,
            "rank": np.int32,
            "p_max": np.float32,
            "entropy": np.float32,
            "kept": np.int32,
            "text_end": np.int32,
        }
        arrays = {name: np.asarray(c[name], dtype=dtypes[name]) for name in TokenTrace.COLUMNS}
        if self.top_k:
            width = self.top_ids[0].shape[0] if self.top_ids else self.top_k
            arrays["top_ids"] = np.asarray(self.top_ids, dtype=np.int64).reshape(-1, width)
            arrays["top_logprobs"] = np.asarray(self.top_logprobs, dtype=np.float32).reshape(-1, width)
        return TokenTrace(**arrays)
