"""Seeded categorical draws, one independent random stream per row.

`draw(logits, seeds, step)` samples token ids from softmax(logits) by inverse
CDF, with the uniform for (row seed, step) from a counter-based hash (splitmix64).
A row's tokens therefore depend only on its own seed and logits: not on the batch it
shares, the batch size, the order of requests or earlier runs. That is what makes every repeat of a prompt
reproducible from the run seed while repeats (different seeds) differ.
torch's generators are stateful and shared by the batch, so they cannot give this.
"""

from __future__ import annotations

import torch

_MASK64 = (1 << 64) - 1


def _s64(x: int) -> int:
    """An unsigned 64-bit constant as the int64 torch stores."""
    x &= _MASK64
    return x - (1 << 64) if x >= 1 << 63 else x


_GOLDEN = _s64(0x9E3779B97F4A7C15)
_MIX1 = _s64(0xBF58476D1CE4E5B9)
_MIX2 = _s64(0x94D049BB133111EB)
_STEP = _s64(0xD1B54A32D192ED03)


def _shr(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's >> is arithmetic)."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def _splitmix64(x: torch.Tensor) -> torch.Tensor:
    # int64 multiplication wraps modulo 2**64, which is what the hash wants.
    x = x + _GOLDEN
    x = (x ^ _shr(x, 30)) * _MIX1
    x = (x ^ _shr(x, 27)) * _MIX2
    return x ^ _shr(x, 31)


def uniforms(seeds: torch.Tensor, step: int | torch.Tensor) -> torch.Tensor:
    """[B] float64 uniforms in (0, 1), a pure function of (seed, step)."""
    seeds = seeds.to(torch.int64)
    step = torch.as_tensor(step, dtype=torch.int64, device=seeds.device)
    bits = _shr(_splitmix64(_splitmix64(seeds) ^ (step * _STEP)), 11)  # 53 random bits
    return (bits.to(torch.float64) + 0.5) * (2.0**-53)


def draw(logits: torch.Tensor, seeds: torch.Tensor, step: int | torch.Tensor) -> torch.Tensor:
    """One token id per row, distributed as softmax(logits[row]); -inf tokens are never drawn.

    Inverse-CDF sampling over the vocabulary in index order: one uniform per row,
    so the cost is a softmax and a cumulative sum, not a hash per token. A token
    of probability 0 adds nothing to the CDF and can never be the first index
    whose CDF exceeds u.
    """
    # A row with NaN, +inf or no finite logit has no distribution to draw from (a model that
    # emits NaN): refused, instead of a token that looks like a sample. One host sync.
    bad = ~torch.isfinite(logits.amax(dim=-1)) if logits.shape[-1] else logits.new_ones(logits.shape[0])
    if bool(bad.any()):
        rows = torch.nonzero(bad).flatten().tolist()
        raise ValueError(
            f"draw: row(s) {rows[:8]}{' ...' if len(rows) > 8 else ''} have no finite "
            "logit to sample from (all -inf, NaN or +inf)"
        )
    cdf = torch.softmax(logits.to(torch.float64), dim=-1).cumsum(dim=-1)
    u = uniforms(seeds, step) * cdf[:, -1]  # scale by the total: rounding can leave it below 1
    token = torch.searchsorted(cdf, u.unsqueeze(1), right=True).squeeze(1)
    return torch.clamp(token, max=logits.shape[-1] - 1)
