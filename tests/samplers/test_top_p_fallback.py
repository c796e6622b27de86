"""The top_p candidate path: `topk` candidates first, more candidates, then a full sort.

`rules.top_p_threshold` no longer sorts the whole vocabulary: it takes each row's top
`TOP_P_CANDIDATES[0]` logits, measures their cumulative mass with the normaliser of the
whole row, and only rows whose candidates hold less than top_p move on to the next stage
(more candidates, then a full sort). These tests pin that the result is the full-sort rule
of SAMPLERS.md (the shortest prefix whose mass reaches top_p, ties at the cut kept) for rows
settled at every stage, and that rows go to the stage they need and no further.

The batch facts the path relies on (which rows have top_p, computed on the host when the
batch is built) are checked against the columns at the end.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from sss.samplers import EDT, CalibratedEpsilon, SamplerBatch, SamplerSpec, apply_rules, process_logits
from sss.samplers import rules

NEG_INF = float("-inf")


def kept(out: torch.Tensor) -> torch.Tensor:
    return out > NEG_INF


def full_sort_reference(z: torch.Tensor, p: float) -> torch.Tensor:
    """Kept mask by the full-sort rule, in float64: sort the whole row, first prefix reaching p.

    p is taken as the float32 value the batch column holds. (The implementation before the
    candidates sorted and normalised in float32, which put the cut off this float64 reference
    in 437 of 4,800 random (row, top_p) cases of 3k-152k tokens; the candidate path in 2, both
    with the prefix mass within 5e-9 of p. The seeds below hit no such case.)
    """
    z64 = z.to(torch.float64)
    p32 = torch.tensor(p, dtype=torch.float32).item()
    sorted_z = torch.sort(z64, dim=-1, descending=True).values
    mass = torch.softmax(sorted_z, dim=-1).cumsum(dim=-1)
    cut = torch.searchsorted(mass, torch.full((z.shape[0], 1), p32, dtype=torch.float64), side="left")
    cut = cut.clamp(max=z.shape[-1] - 1)
    threshold = torch.minimum(sorted_z.gather(1, cut), z64.amax(dim=-1, keepdim=True))
    return z64 >= threshold


def assert_prefix_reaches_p(z: torch.Tensor, mask: torch.Tensor, p: float, tol: float = 1e-6) -> None:
    """The definition, in float64: the kept set reaches p, and without its smallest (tied) logit it does not."""
    probs = torch.softmax(z.to(torch.float64), dim=-1)
    for i in range(z.shape[0]):
        if not torch.isfinite(z[i]).any():
            continue
        kept_z = z[i][mask[i]]
        assert len(kept_z) >= 1
        total = float(probs[i][mask[i]].sum())
        without_cut = float(probs[i][mask[i] & (z[i] > kept_z.min())].sum())
        assert total >= min(p, float(probs[i].sum())) - tol, (i, total, p)
        assert without_cut < p + tol, (i, without_cut, p)


class StageSpy:
    """Records the number of rows each `topk` / `sort` call of the top_p path receives."""

    def __init__(self, monkeypatch):
        self.calls: list[tuple[str, int, int]] = []  # (op, rows, width)
        topk, sort = torch.topk, torch.sort

        def spy_topk(x, k, *args, **kwargs):
            self.calls.append(("topk", x.shape[0], k))
            return topk(x, k, *args, **kwargs)

        def spy_sort(x, *args, **kwargs):
            self.calls.append(("sort", x.shape[0], x.shape[-1]))
            return sort(x, *args, **kwargs)

        monkeypatch.setattr(torch, "topk", spy_topk)
        monkeypatch.setattr(torch, "sort", spy_sort)


def row_needing(n: int, vocab: int, p: float) -> torch.Tensor:
    """A row whose top-p set is exactly its n largest tokens (in a shuffled order)."""
    # n nearly equal top tokens holding a little more than p: n - 1 of them hold less than p
    target = p + 0.3 * min(p, 1 - p) / n
    probs = torch.full((vocab,), (1 - target) / (vocab - n), dtype=torch.float64)
    probs[:n] = target / n * (1 + 1e-3 * torch.linspace(1, -1, n, dtype=torch.float64))  # distinct, same total
    row = torch.log(probs).to(torch.float32)
    return row[torch.randperm(vocab, generator=torch.Generator().manual_seed(n))]


# ------------------------------------------------------------ against a full sort
@pytest.mark.parametrize("vocab", [1000, 1025, 5000, 40000])
@pytest.mark.parametrize("scale", [0.05, 0.3, 1.0, 3.0, 8.0])
def test_matches_full_sort_on_random_rows(vocab, scale):
    """Default candidates (1024, 16384): peaked rows settle at once, flat rows fall back."""
    g = torch.Generator().manual_seed(vocab + int(100 * scale))
    z = torch.randn(6, vocab, generator=g) * scale + 4.0 * torch.randn(6, 1, generator=g)
    for p in (0.05, 0.5, 0.9, 0.95, 0.99):
        out = process_logits(z, SamplerSpec(top_p=p))
        assert torch.equal(kept(out), full_sort_reference(z, p)), p
        assert_prefix_reaches_p(z, kept(out), p)
        assert torch.equal(out[kept(out)], z[kept(out)])


def test_flat_distribution_needs_the_full_sort(monkeypatch):
    """A near-uniform row over a big vocabulary passes both candidate stages to the sort."""
    spy = StageSpy(monkeypatch)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 60000, generator=g) * 0.01  # top 16384 of 60000 hold ~27 %
    out = process_logits(z, SamplerSpec(top_p=0.9))
    assert [c[0] for c in spy.calls] == ["topk", "topk", "sort"]
    assert spy.calls[-1][1] == 2
    assert torch.equal(kept(out), full_sort_reference(z, 0.9))
    assert (kept(out).sum(-1) > 16384).all()


def test_uniform_row_keeps_everything():
    z = torch.zeros(1, 3000)
    for p in (0.001, 0.5, 0.9):
        assert kept(process_logits(z, SamplerSpec(top_p=p))).all()


# ------------------------------------------------------------------ the stages
@pytest.mark.parametrize("p", [0.5, 0.9])
def test_rows_go_to_the_stage_they_need(monkeypatch, p):
    """Small candidate widths (8, 64) over V = 4096, rows needing 1, 8, 9, 64, 65 and 300 tokens."""
    monkeypatch.setattr(rules, "TOP_P_CANDIDATES", (8, 64))
    vocab = 4096
    needs = [1, 8, 9, 64, 65, 300]
    z = torch.stack([row_needing(n, vocab, p) for n in needs])
    ref = full_sort_reference(z, p)
    assert ref.sum(-1).tolist() == needs  # the rows are what they claim
    spy = StageSpy(monkeypatch)
    out = process_logits(z, SamplerSpec(top_p=p))
    assert torch.equal(kept(out), ref)
    # stage 1: every row; stage 2: the rows needing more than 8; sort: more than 64
    assert spy.calls == [("topk", 6, 8), ("topk", 4, 64), ("sort", 2, vocab)]


def test_no_fallback_when_candidates_suffice(monkeypatch):
    spy = StageSpy(monkeypatch)
    g = torch.Generator().manual_seed(1)
    z = torch.randn(8, 50000, generator=g) * 8.0  # peaked: top_p = 0.9 within ~100 tokens
    out = process_logits(z, SamplerSpec(top_p=0.9))
    assert spy.calls == [("topk", 8, 1024)]
    assert torch.equal(kept(out), full_sort_reference(z, 0.9))


def test_small_vocabulary_sorts_once(monkeypatch):
    """V <= the first width: one sort (topk of V would be the same work), no second stage."""
    spy = StageSpy(monkeypatch)
    z = torch.randn(3, 700, generator=torch.Generator().manual_seed(2))
    out = process_logits(z, SamplerSpec(top_p=0.7))
    assert spy.calls == [("sort", 3, 700)]
    assert torch.equal(kept(out), full_sort_reference(z, 0.7))


def test_masked_vocabulary_does_not_fall_back(monkeypatch):
    """Candidates that end in -inf already hold every finite token: no further stage, even
    when rounding leaves their mass just below top_p (then every finite token is kept)."""
    spy = StageSpy(monkeypatch)
    z = torch.full((2, 5000), NEG_INF)
    z[0, [3, 70, 900, 4000, 4999]] = torch.tensor([1.0, 0.5, 0.25, 0.0, -1.0])
    z[1, :10] = torch.linspace(0, -3, 10)
    p = 0.99999994  # the largest float32 below 1
    out = process_logits(z, SamplerSpec(top_p=p))
    assert spy.calls == [("topk", 2, 1024)]
    assert torch.equal(kept(out), z > NEG_INF)
    assert torch.equal(kept(out), full_sort_reference(z, p))


# ------------------------------------------------------------------------ ties
def test_ties_at_the_cut_beyond_the_candidates_are_kept(monkeypatch):
    """The crossing token ties with 19 others, only 3 of them among the 4 candidates: all 20 stay."""
    monkeypatch.setattr(rules, "TOP_P_CANDIDATES", (4, 16))
    z = torch.full((1, 200), -5.0)
    z[0, 50] = 3.0
    z[0, 100:120] = 1.0  # the tied group
    probs = torch.softmax(z[0].double(), -1)
    p = float(probs[50] + 0.5 * probs[100])  # crossed by the first tied token
    spy = StageSpy(monkeypatch)
    out = process_logits(z, SamplerSpec(top_p=p))
    assert spy.calls == [("topk", 1, 4)]  # settled by the candidates
    assert kept(out)[0].nonzero().flatten().tolist() == [50, *range(100, 120)]
    assert torch.equal(kept(out), full_sort_reference(z, p))


def test_ties_across_the_candidate_boundary_when_falling_back(monkeypatch):
    """The candidates end inside a tied group that does not reach p: the next stage decides."""
    monkeypatch.setattr(rules, "TOP_P_CANDIDATES", (4, 16))
    z = torch.full((1, 200), -2.0)
    z[0, :10] = 1.0  # 10 tied, the candidates see 4
    z[0, 10:40] = 0.0
    probs = torch.softmax(z[0].double(), -1)
    p = float(probs[:10].sum() + 8.5 * probs[10])  # crossed by the 19th token, inside the 0.0 group
    spy = StageSpy(monkeypatch)
    out = process_logits(z, SamplerSpec(top_p=p))
    assert [c[0] for c in spy.calls] == ["topk", "topk", "sort"]  # 16 candidates fall short too
    assert kept(out)[0].sum() == 40
    assert torch.equal(kept(out), full_sort_reference(z, p))


@pytest.mark.parametrize("p", [0.5, 0.75, 0.76])
def test_mass_exactly_reaching_p_at_the_candidate_boundary(monkeypatch, p):
    """Dyadic probabilities: the mass reaches 0.5 / 0.75 exactly at the last candidate."""
    monkeypatch.setattr(rules, "TOP_P_CANDIDATES", (2, 3))
    probs = [0.5, 0.25, 0.125, 0.0625, 0.0625]
    z = torch.tensor([[math.log(x) for x in probs]])
    out = process_logits(z, SamplerSpec(top_p=p))
    expected = {0.5: {0}, 0.75: {0, 1}, 0.76: {0, 1, 2}}[p]
    assert set(kept(out)[0].nonzero().flatten().tolist()) == expected


# ------------------------------------------------------------ batches and dtypes
def test_mixed_batch_gathers_only_top_p_rows(monkeypatch):
    """Rows with other rules are not copied into the top_p path; each row equals itself alone."""
    monkeypatch.setattr(rules, "TOP_P_CANDIDATES", (8, 64))
    g = torch.Generator().manual_seed(3)
    z = torch.randn(7, 512, generator=g) * torch.tensor([[0.1], [4.0], [1.0], [0.1], [6.0], [1.0], [0.5]])
    z[5] = NEG_INF  # an all -inf row with top_p
    specs = [
        SamplerSpec(top_p=0.9),
        SamplerSpec(min_p=0.1),
        SamplerSpec(top_p=0.5, temperature=0.7),
        SamplerSpec(edt=EDT()),
        SamplerSpec(top_p=0.95, top_k=5),
        SamplerSpec(top_p=0.3),
        SamplerSpec(calibrated_epsilon=CalibratedEpsilon(a=-0.5, b=0.8)),
    ]
    spy = StageSpy(monkeypatch)
    out = process_logits(z, specs)
    top_p_calls = [c for c in spy.calls if c[2] in (8, 64, 512)]
    assert top_p_calls[0] == ("topk", 4, 8)  # rows 0, 2, 4, 5 only
    for i, spec in enumerate(specs):
        assert torch.equal(out[i : i + 1], process_logits(z[i : i + 1], spec)), i
    assert not kept(out[5]).any()
    for i, p, t in [(0, 0.9, 1.0), (2, 0.5, 0.7)]:
        assert torch.equal(kept(out[i : i + 1]), full_sort_reference(z[i : i + 1] / t, p))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_dtypes_with_fallback(monkeypatch, dtype):
    monkeypatch.setattr(rules, "TOP_P_CANDIDATES", (8, 64))
    g = torch.Generator().manual_seed(4)
    z = (torch.randn(4, 400, generator=g) * torch.tensor([[0.2], [1.0], [3.0], [8.0]])).to(dtype)
    out = process_logits(z, SamplerSpec(top_p=0.9))
    reference = z.to(torch.promote_types(dtype, torch.float32))
    assert out.dtype == reference.dtype
    assert torch.equal(kept(out), full_sort_reference(reference, 0.9))


def test_nan_and_pos_inf_rows_with_fallback(monkeypatch):
    monkeypatch.setattr(rules, "TOP_P_CANDIDATES", (8, 64))
    g = torch.Generator().manual_seed(5)
    z = torch.randn(3, 300, generator=g) * 0.1
    clean = z.clone()
    z[0, 7] = float("nan")
    z[1, [4, 9]] = float("inf")
    out = process_logits(z, SamplerSpec(top_p=0.9))
    assert not torch.isnan(out).any()
    assert not kept(out)[0, 7]
    assert kept(out)[1].nonzero().flatten().tolist() == [4, 9]
    assert torch.equal(out[2:], process_logits(clean[2:], SamplerSpec(top_p=0.9)))


# ------------------------------------------------------------------ batch facts
def specs_mix() -> list[SamplerSpec]:
    return [
        SamplerSpec(),
        SamplerSpec(top_p=0.9),
        SamplerSpec(top_p=1.0),
        SamplerSpec(top_p=0.9999999999),
        SamplerSpec(top_k=7),
        SamplerSpec(top_k=3, top_p=0.5, temperature=0.0),
        SamplerSpec(calibrated_topk=(1, 2, 9), bins=3),
        SamplerSpec(greedy_threshold=0.3),
        SamplerSpec(edt=EDT(n=0.5)),
        SamplerSpec(min_p=0.1, top_p=0.8),
    ]


def test_batch_facts_match_the_columns():
    specs = specs_mix()
    batch = SamplerBatch.from_specs(specs)
    facts = batch.host_facts()
    # top_p = 1 and 0.9999999999 (1.0 in float32) are off, as the float32 column says
    assert facts.top_p_count == 3
    assert facts.top_p_rows.tolist() == (batch.top_p < 1).nonzero().flatten().tolist() == [1, 5, 9]
    assert facts.rank_k == 9 and facts.rank_rows.tolist() == [4, 6]  # row 5 is greedy: k = 1
    assert facts.rank_possible and facts.truncates
    derived = dataclasses.replace(batch, facts=None).host_facts()
    assert derived.top_p_count == facts.top_p_count and derived.rank_k == facts.rank_k
    assert torch.equal(derived.top_p_rows, facts.top_p_rows) and torch.equal(derived.rank_rows, facts.rank_rows)


def test_batch_without_facts_gives_the_same_result():
    """A SamplerBatch built by hand (no host facts) derives them from its columns."""
    specs = specs_mix()
    g = torch.Generator().manual_seed(6)
    z = torch.randn(len(specs), 3000, generator=g) * 2
    batch = SamplerBatch.from_specs(specs)
    assert torch.equal(apply_rules(z, batch), apply_rules(z, dataclasses.replace(batch, facts=None)))


def test_one_spec_or_distinct_equal_specs_build_the_same_batch():
    spec = SamplerSpec(top_p=0.9, calibrated_topk=(1, 2, 3), bins=3)
    same = SamplerBatch.from_specs([spec] * 4)
    equal = SamplerBatch.from_specs([SamplerSpec(top_p=0.9, calibrated_topk=[1, 2, 3], bins=3) for _ in range(4)])
    for field in dataclasses.fields(SamplerBatch):
        a, b = getattr(same, field.name), getattr(equal, field.name)
        if isinstance(a, torch.Tensor):
            assert a.dtype == b.dtype and torch.equal(a, b), field.name
            assert a.is_contiguous(), field.name
    assert same.uses == equal.uses
