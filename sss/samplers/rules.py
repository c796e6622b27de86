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

from .batch import MIN_TEMPERATURE as _MIN_TEMPERATURE
from .batch import SamplerBatch
from .bins import confidence_bin

# An EDT temperature below this is treated as T = 0 (greedy); defined in batch.py, which
# uses it to know on the host whether a row can turn greedy.
MIN_TEMPERATURE = _MIN_TEMPERATURE

NEG_INF = float("-inf")

# top_p candidates: each row's `topk` of this many logits, then (for rows whose candidates
# hold less than top_p of the mass) this many, then a full sort. A full descending sort of a
# 152k vocabulary costs ~18x a topk(1024) on one CPU thread (B = 64) and ~4x on an H200
# (B = 256); a topk(16384) ~3x and ~1.6x. A peaked row reaches top_p within its first 1024
# tokens; a flat one may not (randn * 3 over 152k tokens needs 5.8k-7.4k tokens for 0.9,
# 12k-15k for 0.95), and the second stage catches those short of a sort.
TOP_P_CANDIDATES = (1024, 16384)

# On CUDA a stage with at most this many rows sorts them in full at once: for a few rows a
# 152k sort costs about what a `topk` does (H200: 1 row, sort 0.12 ms, topk(1024) 0.17 ms,
# topk(16384) 0.28 ms; 8 rows: 0.20 / 0.16 / 0.33 ms), and a candidate stage adds a host sync.
CUDA_SORT_ROWS = 10


def sanitize(z: torch.Tensor) -> torch.Tensor:
    """NaN logits become -inf; in a row holding +inf only the +inf tokens stay (uniformly)."""
    return sanitize_with_max(z)[0]


def sanitize_with_max(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`sanitize(z)` and its row maxima [B]; z itself (no copy) when every value is finite or -inf.

    The common case costs one `amax`, which the caller needs anyway: NaN propagates
    through `amax` and +inf is a row's max, so a row needs repair exactly when its max is
    not < +inf (all -inf rows have max -inf and stay as they are). Only then is the
    full repair done (nan_to_num, an `== inf` pass and a `where`: ~30x an `amax` on CPU).
    On a GPU the check is one host sync; the sync-free alternative would be that full
    repair on every call.
    """
    if z.shape[-1] == 0:
        return z, z.new_full(z.shape[:-1], NEG_INF)
    zmax = z.amax(dim=-1)
    if not bool((~(zmax < torch.inf)).any()):
        return z, zmax
    z = torch.nan_to_num(z, nan=NEG_INF, posinf=torch.inf, neginf=NEG_INF)
    pos_inf = z == torch.inf
    has_pos_inf = pos_inf.any(dim=-1, keepdim=True)
    z = torch.where(has_pos_inf, torch.where(pos_inf, 0.0, NEG_INF), z)
    return z, z.amax(dim=-1)


def shifted_exp(
    z: torch.Tensor, zmax: torch.Tensor, out: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(m, exp(z - m)) with m the row max (0 for all -inf rows), as `torch.logsumexp` computes them.

    ``log(e.sum(-1)) + m`` is `torch.logsumexp(z, -1)` bit for bit (the same ops in the same
    order), without its `amax` pass (``zmax`` is given). The [B, V] result goes into ``out``
    when given: on CPU a fresh tensor of that size costs as much in page faults as a pass
    over it, and `apply_rules` then writes its own result into the same buffer.
    """
    m = torch.where(zmax.abs() == torch.inf, 0.0, zmax)
    shifted = torch.sub(z, m.unsqueeze(1), out=out) if out is not None else z - m.unsqueeze(1)
    return m, shifted.exp_()


def logsumexp(z: torch.Tensor, zmax: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """`torch.logsumexp(z, -1)` given the row maxima (see `shifted_exp`)."""
    m, e = shifted_exp(z, zmax, out)
    return torch.log(e.sum(dim=-1)).add_(m)


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


def kth_largest(
    z: torch.Tensor, k: torch.Tensor, zmax: torch.Tensor, max_k: int | None = None, rows: torch.Tensor | None = None
) -> torch.Tensor:
    """The k-th largest logit per row (k >= 1); rows with k >= V get -inf (no restriction).

    ``max_k`` bounds every k strictly between 1 and V, and ``rows`` (device indices) holds
    every row whose k can lie there (None: any row may). `SamplerBatch` knows both when it
    is built, so passing them avoids reading k back from the device (host syncs) and
    copying rows that cannot need a `topk`. Without them both are derived from k.
    """
    vocab = z.shape[-1]
    out = torch.where(k >= vocab, NEG_INF, zmax)  # k = 1 keeps the max (and its ties)
    if max_k is None:
        partial = (k > 1) & (k < vocab)
        if not bool(partial.any()):
            return out
        rows = partial.nonzero().squeeze(1)
        max_k = int(k[rows].max())
    width = min(max_k, vocab - 1)
    if width < 2:
        return out
    sub_z, sub_k, sub_out = (
        (z, k, out) if rows is None else (z.index_select(0, rows), k.index_select(0, rows), out.index_select(0, rows))
    )
    top = torch.topk(sub_z, width, dim=-1).values
    kth = top.gather(1, (sub_k.clamp(1, width) - 1).unsqueeze(1)).squeeze(1)
    value = torch.where((sub_k > 1) & (sub_k < vocab), kth, sub_out)
    return value if rows is None else out.index_copy(0, rows, value)


def top_p_threshold(
    z: torch.Tensor, batch: SamplerBatch, norm: tuple[torch.Tensor, torch.Tensor] | None = None
) -> torch.Tensor:
    """Logit of the token whose cumulative mass first reaches top_p (descending order).

    The full-sort rule (the shortest prefix whose mass reaches top_p; ties at that token
    are kept by the caller's ``>=``), from a `topk` of candidates instead: the i-th largest
    token's mass is exp(z_i - m) / S with the normaliser S of the *whole* row, so the
    candidates' cumulative mass is the full sort's prefix mass. A row whose candidates hold
    less than top_p moves on to more candidates and then a full sort (`TOP_P_CANDIDATES`);
    each stage that leaves such rows costs one host sync.

    ``norm`` is `shifted_exp(z, zmax)`, (m, exp(z - m)), computed here when not given.
    S and the prefix masses are float64: a float32 normaliser or prefix sum is ~1e-7 off,
    enough to move the cut by a token on flat rows. Against a float64 full sort, over 4,800
    random (row, top_p) cases of 3k-152k tokens, the float32 sort-and-softmax used before put
    the cut elsewhere in 437; this path in 2, both with the prefix mass within 5e-9 of top_p.
    """
    out = torch.full((z.shape[0],), NEG_INF, dtype=z.dtype, device=z.device)
    facts = batch.host_facts()
    if facts.top_p_count == 0 or z.shape[-1] == 0:
        return out
    m, e = norm if norm is not None else shifted_exp(z, z.amax(dim=-1))
    rows = facts.top_p_rows
    if rows is None:
        return _top_p_cut(z, batch.top_p, m, _sum_float64(e))
    value = _top_p_cut(
        z.index_select(0, rows),
        batch.top_p.index_select(0, rows),
        m.index_select(0, rows),
        _sum_float64(e.index_select(0, rows)),
    )
    return out.index_copy(0, rows, value)


def _sum_float64(e: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """Row sums of e [B, V] as float64, to ~1e-9 relative: float32 sums of `chunk`-token
    pieces, added in float64. (`e.sum(-1, dtype=torch.float64)` would first copy all of e
    to float64: on one CPU thread that copy cost more than the rest of top_p's stage one.)"""
    rows, vocab = e.shape
    head = vocab - vocab % chunk
    parts = [e[:, :head].reshape(rows, head // chunk, chunk).sum(dim=-1)] if head else []
    if vocab % chunk:
        parts.append(e[:, head:].sum(dim=-1, keepdim=True))
    return torch.cat(parts, dim=-1).to(torch.float64).sum(dim=-1)


def _top_p_cut(z: torch.Tensor, p: torch.Tensor, m: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
    """The top_p threshold of every row of z (all active), candidates first."""
    vocab = z.shape[-1]
    out = None
    pending = None  # indices (into z) of the rows still without a threshold; None: all
    p = p.to(torch.float64).unsqueeze(1)
    for width in (*TOP_P_CANDIDATES, vocab):
        width = min(width, vocab)
        if z.is_cuda and (z.shape[0] if pending is None else len(pending)) <= CUDA_SORT_ROWS:
            width = vocab
        rz, rp, rm, rt = (
            (z, p, m, total)
            if pending is None
            else (
                z.index_select(0, pending),
                p.index_select(0, pending),
                m.index_select(0, pending),
                total.index_select(0, pending),
            )
        )
        if width == vocab:
            cand = torch.sort(rz, dim=-1, descending=True).values
        else:
            cand = torch.topk(rz, width, dim=-1).values
        # exp(z - m) rounded as in S (so a dominant token's rounding cancels), then float64
        mass = (torch.exp(cand - rm.unsqueeze(1)).to(torch.float64) / rt.unsqueeze(1)).cumsum(dim=-1)
        # first index whose cumulative mass >= p
        cut = torch.searchsorted(mass, rp, side="left")  # [n, 1]
        # past the end: rounding left the total below p (full sort: keep all), or not enough
        # candidates; the clamped value is right whenever the last candidate is already -inf
        thr = cand.gather(1, cut.clamp(max=width - 1)).squeeze(1)
        out = thr if out is None else out.index_copy(0, pending, thr)
        if width == vocab:
            break
        # rows whose candidates fall short of p and still hold a finite token beyond them
        short = ((cut.squeeze(1) >= width) & (cand[:, -1] > NEG_INF)).nonzero().squeeze(1)  # one host sync
        if short.numel() == 0:
            break
        pending = short if pending is None else pending.index_select(0, short)
    return out
