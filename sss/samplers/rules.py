"""The sampler rules as batched tensor functions.

Every truncation rule is monotone in probability (or rank), so each one reduces
to a per-row *logit threshold*: a token is kept when its (temperature-scaled)
logit is >= the threshold. Stacking rules is then a max over thresholds, and the
kept set is always a prefix of the sorted vocabulary. Probability thresholds
``p >= tau`` become ``z >= log(tau) + logsumexp(z)``, which never underflows.
Rank rules become a per-row k whose k-th largest logit is the threshold; ties
at any threshold are kept (``>=``), as SAMPLERS.md asks.
"""

from __future__ import annotations

import torch

from .batch import SamplerBatch
from .bins import confidence_bin

# An EDT temperature below this is treated as T = 0 (greedy): at such a
# temperature the scaled logits overflow long before the distribution differs
# from the argmax in any way a float32 sampler could see.
MIN_TEMPERATURE = 1e-5

NEG_INF = float("-inf")


def sanitize(z: torch.Tensor) -> torch.Tensor:
    """NaN logits become -inf; in a row holding +inf only the +inf tokens stay (uniformly)."""
    z = torch.nan_to_num(z, nan=NEG_INF, posinf=torch.inf, neginf=NEG_INF)
    pos_inf = z == torch.inf
    has_pos_inf = pos_inf.any(dim=-1, keepdim=True)
    if bool(has_pos_inf.any()):
        z = torch.where(has_pos_inf, torch.where(pos_inf, 0.0, NEG_INF), z)
    return z


def entropy(z: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of softmax(z) per row; 0 for one-hot rows, -inf entries allowed."""
    return torch.special.entr(torch.softmax(z, dim=-1)).sum(dim=-1)


def temperatures(z: torch.Tensor, batch: SamplerBatch) -> torch.Tensor:
    """Per-row temperature: the fixed T, or EDT's T0 * N ** (theta / H) from the unscaled entropy."""
    t = batch.temperature
    if "edt" in batch.uses:
        h = entropy(z)
        # theta = 0 means a constant T0, also at H = 0 (where theta / H would be NaN).
        exponent = torch.where(batch.edt_theta == 0, 0.0, batch.edt_theta / h)
        t_edt = batch.edt_t0 * torch.pow(batch.edt_n, exponent)
        t = torch.where(batch.edt_on, t_edt, t)
        # N > 1 at (near-)zero entropy overflows T to +inf; -inf / inf would be NaN and
        # blank the whole row, so cap T at the largest finite value (the same limit: uniform).
        t = torch.clamp(t, max=torch.finfo(t.dtype).max)
    return t


# ----------------------------------------------------------- probability rules
def min_p_threshold(zmax: torch.Tensor, batch: SamplerBatch) -> torch.Tensor:
    # p >= min_p * p_max  <=>  z >= log(min_p) + z_max (the normaliser cancels)
    return torch.log(batch.min_p) + zmax


def epsilon_threshold(lse: torch.Tensor, batch: SamplerBatch) -> torch.Tensor:
    return torch.log(batch.epsilon) + lse


def eta_threshold(z: torch.Tensor, lse: torch.Tensor, batch: SamplerBatch) -> torch.Tensor:
    # Hewitt et al. 2022: eta = min(eps, sqrt(eps) * exp(-H)), H of the scaled distribution.
    h = entropy(z)
    log_eta = torch.minimum(torch.log(batch.eta), 0.5 * torch.log(batch.eta) - h)
    return log_eta + lse


def calibrated_epsilon_threshold(lse: torch.Tensor, batch: SamplerBatch) -> torch.Tensor:
    # 10**A * p**B >= c  <=>  p >= (c / 10**A) ** (1 / B) for B > 0 (checked in the spec).
    return batch.calibrated_log_eps + lse


# ---------------------------------------------------------------- rank rules
def rank_caps(p_max: torch.Tensor | None, batch: SamplerBatch, vocab: int) -> torch.Tensor:
    """Per-row largest kept rank from top-k, Calibrated-TopK, Greedy-Threshold, confidence-bin, greedy."""
    uses = batch.uses
    k = torch.full((batch.rows,), vocab, dtype=torch.int64, device=batch.top_k.device)
    if "top_k" in uses:
        k = torch.where(batch.top_k > 0, torch.clamp(batch.top_k, max=vocab), k)
    if "calibrated_topk" in uses or "confidence_bin" in uses:
        m = confidence_bin(p_max, batch.bins)
        if "calibrated_topk" in uses:
            k_bin = batch.calibrated_topk.gather(1, (m - 1).unsqueeze(1)).squeeze(1)
            k = torch.where(k_bin > 0, torch.minimum(k, k_bin), k)
        if "confidence_bin" in uses:
            outside = (batch.confidence_bin > 0) & (m != batch.confidence_bin)
            k = torch.where(outside, 1, k)
    if "greedy_threshold" in uses:
        k = torch.where(p_max < batch.greedy_threshold, 1, k)
    return k


def kth_largest(z: torch.Tensor, k: torch.Tensor, zmax: torch.Tensor) -> torch.Tensor:
    """The k-th largest logit per row (k >= 1); rows with k >= V get -inf (no restriction)."""
    vocab = z.shape[-1]
    out = torch.where(k >= vocab, NEG_INF, zmax)
    partial = (k > 1) & (k < vocab)
    if bool(partial.any()):
        rows = partial.nonzero().squeeze(1)
        k_rows = k[rows]
        top = torch.topk(z[rows], int(k_rows.max()), dim=-1).values
        out = out.index_put((rows,), top.gather(1, (k_rows - 1).unsqueeze(1)).squeeze(1))
    return out


def top_p_threshold(z: torch.Tensor, batch: SamplerBatch) -> torch.Tensor:
    """Logit of the token whose cumulative mass first reaches top_p (descending order)."""
    out = torch.full((z.shape[0],), NEG_INF, dtype=z.dtype, device=z.device)
    active = batch.top_p < 1.0
    if not bool(active.any()):
        return out
    rows = active.nonzero().squeeze(1)
    sorted_z = torch.sort(z[rows], dim=-1, descending=True).values
    mass = torch.softmax(sorted_z, dim=-1).cumsum(dim=-1)
    # first index whose cumulative mass >= p; rounding can leave the total below 1
    cut = torch.searchsorted(mass, batch.top_p[rows].unsqueeze(1).contiguous(), side="left")
    cut = torch.clamp(cut, max=z.shape[-1] - 1)
    return out.index_put((rows,), sorted_z.gather(1, cut).squeeze(1))
