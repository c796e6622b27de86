"""`process_logits`: apply stacked sampler rules to a batch of logits."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from . import kernels, rules
from .batch import SamplerBatch
from .spec import SamplerSpec


def process_logits(logits: torch.Tensor, spec: SamplerSpec | Sequence[SamplerSpec]) -> torch.Tensor:
    """Temperature-scaled logits with every excluded token at -inf.

    ``spec`` is one `SamplerSpec` for every row of ``logits`` [B, V], or a list of B specs.
    Sampling from the softmax of the result (argmax for greedy rows) is the rule.
    """
    # --- input checks (issue 14): one clear TypeError instead of an AttributeError deep inside
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        kind = f"a {logits.dtype} tensor" if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise TypeError(
            f"logits must be a floating-point torch.Tensor [batch, vocab], got {kind} "
            "(convert with torch.as_tensor(x, dtype=torch.float32))"
        )
    if logits.dim() != 2:
        raise ValueError(f"logits must be [batch, vocab], got shape {tuple(logits.shape)}")
    rows = logits.shape[0]
    if isinstance(spec, SamplerSpec):
        specs = [spec] * rows
    else:
        if spec is None or isinstance(spec, (str, bytes, dict)) or not isinstance(spec, Sequence):
            raise TypeError(
                f"spec must be a SamplerSpec or a list of one per row, got "
                f"{type(spec).__name__} (SamplerSpec.from_mapping builds one from a dict)"
            )
        specs = list(spec)
        wrong = [type(s).__name__ for s in specs if not isinstance(s, SamplerSpec)]
        if wrong:
            raise TypeError(f"spec must be a list of SamplerSpec, got an element of type {wrong[0]}")
        if len(specs) != rows:
            raise ValueError(f"got {len(specs)} sampler specs for {rows} rows of logits")
    return apply_rules(logits, SamplerBatch.from_specs(specs, device=logits.device))


def apply_rules(logits: torch.Tensor, batch: SamplerBatch) -> torch.Tensor:
    """The composition of SAMPLERS.md, batched: temperature, then one threshold per row.

    Host syncs (GPU): one to learn whether any row holds NaN or +inf (`rules.sanitize_with_max`),
    and one per top_p candidate stage that leaves rows short of top_p. Everything else the
    host needs (which rows have top_p, the largest top-k) comes from `batch.host_facts()`.

    CUDA logits of float32/bfloat16/float16 take the fused Triton kernels instead
    (`sss.samplers.kernels`: the same rules, no host sync); this torch code is the CPU path
    and the reference they are tested against.
    """
    if batch.rows != logits.shape[0]:
        raise ValueError(f"sampler batch has {batch.rows} rows, logits have {logits.shape[0]}")
    if kernels.usable(logits):
        return kernels.apply_rules_cuda(logits, batch)
    out_dtype = torch.promote_types(logits.dtype, torch.float32)
    z = logits.to(out_dtype)
    if z.numel() == 0:
        return z.clone() if z is logits else z
    z, zmax = rules.sanitize_with_max(z)
    vocab = z.shape[-1]
    uses = batch.uses
    facts = batch.host_facts()

    # 1. temperature (fixed or EDT); T = 0, or an EDT temperature that reaches 0, is greedy
    greedy = batch.greedy
    if "temperature" in uses or "edt" in uses:
        t = rules.temperatures(z, batch)
        greedy = greedy | (t < rules.MIN_TEMPERATURE)
        t = torch.where(greedy, 1.0, t).to(out_dtype)
        # --- issue 14: a finite row max that z / t would take to +-inf (e.g. 3e38 at T = 0.5)
        # shifts that row by its max first (softmax is shift-invariant), so the argmax survives;
        # other rows are divided as they are, without a host sync
        shift = torch.where(torch.isinf(zmax / t) & torch.isfinite(zmax), zmax, 0.0).to(out_dtype)
        z = (z - shift.unsqueeze(1)) / t.unsqueeze(1)
        # max(z / t) == max(z) / t bit for bit: IEEE division by a positive t is correctly
        # rounded, hence monotone, so this saves a pass over the logits
        zmax = (zmax - shift) / t
    if not facts.truncates:
        return z.clone() if z is logits else z  # every threshold would be -inf: all kept

    # 2. every rule on the same scaled distribution, as a logit threshold per row
    threshold = torch.full_like(zmax, rules.NEG_INF)
    needs_lse = (
        bool(uses & {"epsilon", "eta", "calibrated_epsilon", "greedy_threshold", "calibrated_topk", "confidence_bin"})
        or facts.top_p_count > 0
    )
    lse = norm = buf = None
    if needs_lse:
        # the buffer that takes logsumexp's temporary then takes the result (one [B, V] allocation)
        buf = torch.empty_like(z)
        norm = rules.shifted_exp(z, zmax, out=buf)  # (m, exp(z - m)), for top_p too
        lse = torch.log(norm[1].sum(dim=-1)).add_(norm[0])  # torch.logsumexp(z, -1), bit for bit
    p_max = torch.exp(zmax - lse) if lse is not None else None

    if "min_p" in uses:
        threshold = torch.maximum(threshold, rules.min_p_threshold(zmax, batch))
    if "epsilon" in uses:
        threshold = torch.maximum(threshold, rules.epsilon_threshold(lse, batch))
    if "eta" in uses:
        threshold = torch.maximum(threshold, rules.eta_threshold(z, lse, batch))
    if "calibrated_epsilon" in uses:
        threshold = torch.maximum(threshold, rules.calibrated_epsilon_threshold(lse, batch))
    if facts.top_p_count:
        threshold = torch.maximum(threshold, rules.top_p_threshold(z, batch, norm=norm))
    if facts.rank_possible:
        k = rules.rank_caps(p_max, batch, vocab)
        k = torch.where(greedy, 1, k)
        threshold = torch.maximum(threshold, rules.kth_largest(z, k, zmax, max_k=facts.rank_k, rows=facts.rank_rows))

    # 3. the argmax is always kept: a row whose rules keep nothing becomes greedy
    threshold = torch.minimum(threshold, zmax)
    keep = z >= threshold.unsqueeze(1)  # False for NaN (an all -inf row under EDT gives T = NaN)
    if buf is not None:
        return torch.where(keep, z, z.new_full((), rules.NEG_INF), out=buf)
    if z is logits:  # never write into the caller's tensor
        return torch.where(keep, z, rules.NEG_INF)
    return z.masked_fill_(keep.logical_not_(), rules.NEG_INF)  # ours: in place saves a [B, V] allocation
