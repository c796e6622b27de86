"""`process_logits`: apply stacked sampler rules to a batch of logits."""

from __future__ import annotations

from typing import Sequence

import torch

from . import rules
from .batch import SamplerBatch
from .spec import SamplerSpec


def process_logits(logits: torch.Tensor, spec: SamplerSpec | Sequence[SamplerSpec]) -> torch.Tensor:
    """Temperature-scaled logits with every excluded token at -inf.

    ``spec`` is one `SamplerSpec` for every row of ``logits`` [B, V], or a list of B specs.
    Sampling from the softmax of the result (argmax for greedy rows) is the rule.
    """
    if logits.dim() != 2:
        raise ValueError(f"logits must be [batch, vocab], got shape {tuple(logits.shape)}")
    rows = logits.shape[0]
    if isinstance(spec, SamplerSpec):
        specs = [spec] * rows
    else:
        specs = list(spec)
        if len(specs) != rows:
            raise ValueError(f"got {len(specs)} sampler specs for {rows} rows of logits")
    return apply_rules(logits, SamplerBatch.from_specs(specs, device=logits.device))


def apply_rules(logits: torch.Tensor, batch: SamplerBatch) -> torch.Tensor:
    """The composition of SAMPLERS.md, batched: temperature, then one threshold per row."""
    if batch.rows != logits.shape[0]:
        raise ValueError(f"sampler batch has {batch.rows} rows, logits have {logits.shape[0]}")
    out_dtype = torch.promote_types(logits.dtype, torch.float32)
    z = rules.sanitize(logits.to(out_dtype))
    if z.numel() == 0:
        return z
    vocab = z.shape[-1]
    uses = batch.uses

    # 1. temperature (fixed or EDT); T = 0, or an EDT temperature that reaches 0, is greedy
    greedy = batch.greedy
    if "temperature" in uses or "edt" in uses:
        t = rules.temperatures(z, batch)
        greedy = greedy | (t < rules.MIN_TEMPERATURE)
        z = z / torch.where(greedy, 1.0, t).to(out_dtype).unsqueeze(1)

    # 2. every rule on the same scaled distribution, as a logit threshold per row
    zmax = z.amax(dim=-1)
    threshold = torch.full_like(zmax, rules.NEG_INF)
    needs_lse = uses & {"epsilon", "eta", "calibrated_epsilon", "greedy_threshold",
                        "calibrated_topk", "confidence_bin"}
    lse = torch.logsumexp(z, dim=-1) if needs_lse else None
    p_max = torch.exp(zmax - lse) if lse is not None else None

    if "min_p" in uses:
        threshold = torch.maximum(threshold, rules.min_p_threshold(zmax, batch))
    if "epsilon" in uses:
        threshold = torch.maximum(threshold, rules.epsilon_threshold(lse, batch))
    if "eta" in uses:
        threshold = torch.maximum(threshold, rules.eta_threshold(z, lse, batch))
    if "calibrated_epsilon" in uses:
        threshold = torch.maximum(threshold, rules.calibrated_epsilon_threshold(lse, batch))
    if "top_p" in uses:
        threshold = torch.maximum(threshold, rules.top_p_threshold(z, batch))
    k = rules.rank_caps(p_max, batch, vocab)
    k = torch.where(greedy, 1, k)
    if bool((k < vocab).any()):
        threshold = torch.maximum(threshold, rules.kth_largest(z, k, zmax))

    # 3. the argmax is always kept: a row whose rules keep nothing becomes greedy
    threshold = torch.minimum(threshold, zmax)
    return torch.where(z >= threshold.unsqueeze(1), z, rules.NEG_INF)
