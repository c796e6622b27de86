"""One traced step's numbers, from the logits that predicted a gold token.

Rank rule (the one vLLM's `rank` follows, so every engine reports the same thing): the gold
token's rank is the number of vocabulary entries whose log-probability is >= its own, so a tie
counts against the gold token and rank 1 means it is the unique most probable token, or tied
with nothing better.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch


@dataclass
class StepColumns:
    """Columns of traced steps (one entry per answer token), numpy arrays."""

    doc_id: np.ndarray  # int64
    position: np.ndarray  # int32, index of the token within the answer
    token_id: np.ndarray  # int32, the gold token
    rank: np.ndarray  # int32, 1-based, full vocabulary
    prob: np.ndarray  # float32, the gold token's probability
    p_max: np.ndarray  # float32
    top_ids: np.ndarray  # int32 [n, K], most probable first
    top_probs: np.ndarray  # float32 [n, K]

    def __len__(self) -> int:
        return len(self.doc_id)

    @classmethod
    def concat(cls, parts: list[StepColumns]) -> StepColumns:
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)})


@torch.inference_mode()
def step_columns(
    logits: torch.Tensor, gold: torch.Tensor, top_k: int, doc_id: int, first_position: int = 0
) -> StepColumns:
    """`logits` [n, V] where row i predicted `gold[i]`, the answer's token at first_position + i."""
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    gold = gold.to(logprobs.device, torch.int64)
    gold_lp = logprobs.gather(1, gold[:, None])
    rank = (logprobs >= gold_lp).sum(-1)
    top_lp, top_ids = logprobs.topk(min(top_k, logprobs.shape[-1]), dim=-1)
    n = len(gold)
    return StepColumns(
        doc_id=np.full(n, doc_id, dtype=np.int64),
        position=np.arange(first_position, first_position + n, dtype=np.int32),
        token_id=gold.cpu().numpy().astype(np.int32),
        rank=rank.cpu().numpy().astype(np.int32),
        prob=gold_lp[:, 0].exp().cpu().numpy().astype(np.float32),
        p_max=top_lp[:, 0].exp().cpu().numpy().astype(np.float32),
        top_ids=top_ids.cpu().numpy().astype(np.int32),
        top_probs=top_lp.exp().cpu().numpy().astype(np.float32),
    )
