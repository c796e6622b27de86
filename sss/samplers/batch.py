"""Per-row sampler parameters packed into tensors, built once per batch layout.

Engines hold a `SamplerBatch` and rebuild it only when the rows change; the hot
path (`apply_rules`) then runs batched tensor ops with no per-row Python.
A rule that no row enables is skipped entirely (its `uses_*` flag is False).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from .spec import SamplerSpec

_OFF = 0.0


@dataclass
class SamplerBatch:
    rows: int
    temperature: torch.Tensor        # [B] float32, 1.0 where unused
    greedy: torch.Tensor             # [B] bool: T == 0 or greedy
    edt_on: torch.Tensor             # [B] bool
    edt_n: torch.Tensor              # [B] float32
    edt_theta: torch.Tensor          # [B] float32
    edt_t0: torch.Tensor             # [B] float32
    top_k: torch.Tensor              # [B] int64, 0 = off
    top_p: torch.Tensor              # [B] float32, 1.0 = off
    min_p: torch.Tensor              # [B] float32, 0 = off
    epsilon: torch.Tensor            # [B] float32, 0 = off
    eta: torch.Tensor                # [B] float32, 0 = off
    calibrated_log_eps: torch.Tensor  # [B] float32, natural log of the equivalent epsilon; -inf = off
    greedy_threshold: torch.Tensor   # [B] float32, 0 = off
    calibrated_topk: torch.Tensor    # [B, max bins] int64, 0 = off
    confidence_bin: torch.Tensor     # [B] int64, 0 = off
    bins: torch.Tensor               # [B] int64
    uses: frozenset[str]             # names of the rules at least one row enables

    @classmethod
    def from_specs(cls, specs: Sequence[SamplerSpec], device: torch.device | str = "cpu") -> "SamplerBatch":
        rows = len(specs)
        f32 = dict(dtype=torch.float32, device=device)
        i64 = dict(dtype=torch.int64, device=device)
        max_bins = max((s.bins for s in specs), default=1)

        def column(values, **kw):
            return torch.tensor(list(values), **kw)

        ks = [list(s.calibrated_topk) + [0] * (max_bins - s.bins) if s.calibrated_topk else [0] * max_bins
              for s in specs]
        uses = set()
        for s in specs:
            uses.update(s.enabled())
        if any(s.is_greedy for s in specs):
            uses.add("greedy")
        return cls(
            rows=rows,
            temperature=column((1.0 if s.is_greedy else s.temperature for s in specs), **f32),
            greedy=column((s.is_greedy for s in specs), dtype=torch.bool, device=device),
            edt_on=column((s.edt is not None for s in specs), dtype=torch.bool, device=device),
            edt_n=column((s.edt.n if s.edt else 1.0 for s in specs), **f32),
            edt_theta=column((s.edt.theta if s.edt else 0.0 for s in specs), **f32),
            edt_t0=column((s.edt.t0 if s.edt else 1.0 for s in specs), **f32),
            top_k=column((s.top_k or 0 for s in specs), **i64),
            top_p=column((1.0 if s.top_p is None else s.top_p for s in specs), **f32),
            min_p=column((s.min_p or _OFF for s in specs), **f32),
            epsilon=column((s.epsilon or _OFF for s in specs), **f32),
            eta=column((s.eta or _OFF for s in specs), **f32),
            calibrated_log_eps=column((_log_or_off(s.calibrated_epsilon.epsilon if s.calibrated_epsilon else 0.0)
                                       for s in specs), **f32),
            greedy_threshold=column((s.greedy_threshold or _OFF for s in specs), **f32),
            calibrated_topk=torch.tensor(ks, **i64).reshape(rows, max_bins),
            confidence_bin=column((s.confidence_bin or 0 for s in specs), **i64),
            bins=column((s.bins for s in specs), **i64),
            uses=frozenset(uses),
        )


def _log_or_off(eps: float) -> float:
    return math.log(eps) if eps > 0 else -math.inf
