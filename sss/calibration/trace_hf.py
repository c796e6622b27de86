"""Traces with transformers: one frozen forward pass per batch of (prompt + answer) sequences.

Sequences are left-padded with explicit position ids, so every answer ends at the last
position and `logits_to_keep` computes the vocabulary projection only over the last
(longest answer + 1) positions instead of the whole batch.
"""

from __future__ import annotations

import torch

from .batching import batches, progress
from .data import Sequence
from .stats import StepColumns, step_columns


def load_hf(path: str, dtype: str, device: str, trust_remote_code: bool = False):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype), trust_remote_code=trust_remote_code)
    model.to(device).eval().requires_grad_(False)  # frozen: no gradients, no optimizer
    return model


@torch.inference_mode()
def trace_hf(sequences: list[Sequence], model, top_k: int, batch_size: int, show_progress: bool = True) -> StepColumns:
    device = next(model.parameters()).device
    parts = []
    bar = progress(sum(s.n_answer for s in sequences), "trace (hf)") if show_progress else None
    for batch in batches(sequences, batch_size):
        width = max(len(s.input_ids) for s in batch)
        longest_answer = max(s.n_answer for s in batch)
        ids = torch.zeros(len(batch), width, dtype=torch.long)
        mask = torch.zeros(len(batch), width, dtype=torch.long)
        for row, seq in enumerate(batch):
            ids[row, width - len(seq.input_ids) :] = torch.tensor(seq.input_ids)
            mask[row, width - len(seq.input_ids) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = model(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            position_ids=positions.to(device),
            logits_to_keep=longest_answer + 1,
        ).logits
        for row, seq in enumerate(batch):
            n = seq.n_answer
            # kept position j is absolute width - (longest + 1) + j; answer token t (0-based)
            # sits at width - n + t and is predicted one position earlier
            first = longest_answer - n
            gold = torch.tensor(seq.input_ids[seq.answer_start :])
            parts.append(step_columns(logits[row, first : first + n], gold, top_k, seq.doc_id))
        if bar is not None:
            bar.update(sum(s.n_answer for s in batch))
    if bar is not None:
        bar.close()
    return StepColumns.concat(parts)
