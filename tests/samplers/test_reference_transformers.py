"""`process_logits` against the logits warpers of Hugging Face `transformers`.

Every case applies `TemperatureLogitsWarper(T)` and then one truncation warper, and
compares with `SamplerSpec(temperature=T, <rule>=x)`. The kept sets (out > -inf) must be
identical and the kept values must equal logits / T.

Where the reference differs *by definition* from SAMPLERS.md, the difference is pinned by
its own test below instead of being papered over:

* `EpsilonLogitsWarper` / `EtaLogitsWarper` refuse ``epsilon = 0``; for us 0 means "off".
* Their fallback keeps ``min_tokens_to_keep`` tokens, and `generate()` passes 2 (or the
  number of EOS tokens + 1) under beam search. SAMPLERS.md keeps only the argmax (with its
  ties), which matches the warpers' default ``min_tokens_to_keep=1`` used for the exact
  comparisons.
* Chained HF warpers renormalise between steps (`TopK` then `TopP` computes top-p on the
  top-k distribution); SAMPLERS.md evaluates every rule on one distribution and intersects,
  so stacked specs are compared with the intersection of each warper applied *alone*.
* `TopPLogitsWarper` breaks ties at the cut by sort position; we keep every tied token
  (covered in test_rules_hand_computed.py, random logits here have no ties).
"""

from __future__ import annotations

import math

import pytest
import torch
from transformers import (
    EpsilonLogitsWarper,
    EtaLogitsWarper,
    MinPLogitsWarper,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from sss.samplers import SamplerSpec, process_logits

NEG_INF = float("-inf")

# (seed, vocabulary size); each case builds a batch of rows with different spreads.
CASES = [(0, 1000), (1, 2049), (2, 3001), (3, 5000)]
TEMPERATURES = [0.6, 1.0, 1.7]

WARPERS = {
    "top_k": (lambda x: TopKLogitsWarper(top_k=x, min_tokens_to_keep=1), [1, 7, 50, 999]),
    "top_p": (lambda x: TopPLogitsWarper(top_p=x, min_tokens_to_keep=1), [0.05, 0.5, 0.9, 0.99]),
    "min_p": (lambda x: MinPLogitsWarper(min_p=x, min_tokens_to_keep=1), [0.0, 0.01, 0.1, 0.5, 1.0]),
    "epsilon": (lambda x: EpsilonLogitsWarper(epsilon=x, min_tokens_to_keep=1), [1e-4, 1e-3, 0.02, 0.9]),
    "eta": (lambda x: EtaLogitsWarper(epsilon=x, min_tokens_to_keep=1, device="cpu"), [1e-4, 3e-4, 1e-3, 0.02, 0.5]),
}


def random_logits(seed: int, vocab: int) -> torch.Tensor:
    """Rows with very different shapes: flat, moderate, peaked, Zipf-like, a few spikes."""
    g = torch.Generator().manual_seed(seed)
    rows = [torch.randn(vocab, generator=g) * spread for spread in (0.3, 1.0, 2.5, 6.0)]
    # Zipf-like log-probabilities in random order
    ranks = torch.randperm(vocab, generator=g).to(torch.float32) + 1
    rows.append(-1.1 * torch.log(ranks) + 0.05 * torch.randn(vocab, generator=g))
    # a flat background with a handful of strong candidates
    spiky = torch.randn(vocab, generator=g)
    spiky[torch.randperm(vocab, generator=g)[:5]] += torch.tensor([9.0, 8.5, 8.0, 6.0, 3.0])
    rows.append(spiky)
    logits = torch.stack(rows) + 3.0 * torch.randn(len(rows), 1, generator=g)  # arbitrary offsets
    return logits


def hf(logits: torch.Tensor, temperature: float, warper) -> torch.Tensor:
    ids = torch.zeros(logits.shape[0], 1, dtype=torch.long)
    scaled = TemperatureLogitsWarper(temperature)(ids, logits.clone())
    return warper(ids, scaled) if warper is not None else scaled


def kept(out: torch.Tensor) -> torch.Tensor:
    return out > NEG_INF


def assert_same_kept(ours: torch.Tensor, ref: torch.Tensor, what: str) -> None:
    a, b = kept(ours), kept(ref)
    if not torch.equal(a, b):
        rows = (a != b).any(dim=-1).nonzero().flatten().tolist()
        detail = {r: (int(a[r].sum()), int(b[r].sum())) for r in rows}
        raise AssertionError(f"{what}: kept sets differ in rows {rows} (ours, reference sizes: {detail})")


def assert_values_are_logits_over_t(out: torch.Tensor, logits: torch.Tensor, temperature: float) -> None:
    mask = kept(out)
    expected = (logits.to(torch.float64) / temperature)[mask]
    assert out.dtype == torch.float32
    torch.testing.assert_close(out[mask].to(torch.float64), expected, rtol=2e-7, atol=0.0)
    assert torch.isfinite(out[mask]).all()


@pytest.mark.parametrize("seed,vocab", CASES)
@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_temperature_matches_reference(seed, vocab, temperature):
    logits = random_logits(seed, vocab)
    ours = process_logits(logits, SamplerSpec(temperature=temperature))
    ref = hf(logits, temperature, None)
    assert kept(ours).all()
    torch.testing.assert_close(ours, ref, rtol=2e-7, atol=0.0)
    assert_values_are_logits_over_t(ours, logits, temperature)


@pytest.mark.parametrize("rule", sorted(WARPERS))
@pytest.mark.parametrize("seed,vocab", CASES)
def test_truncation_matches_reference(rule, seed, vocab):
    make, values = WARPERS[rule]
    logits = random_logits(seed, vocab)
    sizes = set()
    for temperature in TEMPERATURES:
        for x in values:
            ours = process_logits(logits, SamplerSpec(temperature=temperature, **{rule: x}))
            ref = hf(logits, temperature, make(x))
            assert_same_kept(ours, ref, f"{rule}={x} T={temperature}")
            assert_values_are_logits_over_t(ours, logits, temperature)
            sizes.update(kept(ours).sum(dim=-1).tolist())
    # the grid must exercise real truncation, not only "keep all" / "keep one"
    assert len(sizes - {1, vocab}) >= 3, sizes


@pytest.mark.parametrize("seed,vocab", CASES[:2])
def test_mixed_batch_rows_match_reference(seed, vocab):
    """Different rules and temperatures in one batch, each row against its own reference."""
    logits = random_logits(seed, vocab)
    rows = [
        ("top_k", 7, 0.6),
        ("top_p", 0.9, 1.7),
        ("min_p", 0.05, 1.0),
        ("epsilon", 3e-4, 0.6),
        ("eta", 1e-3, 1.7),
        ("top_p", 0.5, 1.0),
    ]
    specs = [SamplerSpec(temperature=t, **{rule: x}) for rule, x, t in rows]
    ours = process_logits(logits, specs)
    for i, (rule, x, t) in enumerate(rows):
        ref = hf(logits[i : i + 1], t, WARPERS[rule][0](x))
        assert_same_kept(ours[i : i + 1], ref, f"row {i}: {rule}={x} T={t}")
        assert_values_are_logits_over_t(ours[i : i + 1], logits[i : i + 1], t)


STACKS = [
    {"top_k": 50, "top_p": 0.9},
    {"top_k": 400, "top_p": 0.5, "min_p": 0.02},
    {"min_p": 0.05, "epsilon": 3e-4},
    {"top_p": 0.95, "eta": 1e-3},
    {"top_k": 7, "epsilon": 0.02, "eta": 3e-4, "min_p": 0.1, "top_p": 0.8},
]


@pytest.mark.parametrize("stack", STACKS, ids=lambda s: "+".join(s))
@pytest.mark.parametrize("seed,vocab", CASES[1:3])
def test_stacked_rules_are_the_intersection_of_reference_warpers(stack, seed, vocab):
    logits = random_logits(seed, vocab)
    for temperature in TEMPERATURES:
        ours = process_logits(logits, SamplerSpec(temperature=temperature, **stack))
        expected = torch.ones_like(logits, dtype=torch.bool)
        for rule, x in stack.items():
            expected &= kept(hf(logits, temperature, WARPERS[rule][0](x)))
        # every warper keeps the argmax, so the intersection is never empty: no fallback needed
        assert expected.any(dim=-1).all()
        assert torch.equal(kept(ours), expected), f"{stack} T={temperature}"
        assert_values_are_logits_over_t(ours, logits, temperature)


def test_chained_hf_warpers_renormalise_but_we_do_not():
    """HF's TopK -> TopP computes top-p on the top-k distribution; SAMPLERS.md does not."""
    probs = torch.tensor([[0.40, 0.30, 0.20, 0.10]])
    logits = probs.log()
    ids = torch.zeros(1, 1, dtype=torch.long)
    chained = TopPLogitsWarper(0.5)(ids, TopKLogitsWarper(2)(ids, logits.clone()))
    # top-k = {0, 1} renormalised to (4/7, 3/7): token 0 alone reaches 0.5
    assert kept(chained).tolist() == [[True, False, False, False]]
    # on one distribution: top-p(0.5) = {0, 1} (0.4 < 0.5, 0.7 crosses), top-k(2) = {0, 1}
    ours = process_logits(logits, SamplerSpec(top_k=2, top_p=0.5))
    assert kept(ours).tolist() == [[True, True, False, False]]


def test_epsilon_and_eta_zero_mean_off_unlike_reference():
    logits = random_logits(0, 1000)
    for rule, warper in (("epsilon", EpsilonLogitsWarper), ("eta", EtaLogitsWarper)):
        with pytest.raises(ValueError):
            warper(epsilon=0.0)
        assert kept(process_logits(logits, SamplerSpec(**{rule: 0.0}))).all()


def test_epsilon_fallback_keeps_only_the_argmax_unlike_beam_search_min_tokens():
    """When no token passes, we keep the argmax (as HF with min_tokens_to_keep=1), not 2.

    (Eta never needs the fallback: p_max >= exp(-H), so sqrt(eps) * exp(-H) < p_max.)
    """
    logits = random_logits(1, 1000)
    eps = 0.99  # above every p_max here, so nothing passes
    assert (torch.softmax(logits, -1).amax(-1) < eps).all()
    ours = process_logits(logits, SamplerSpec(epsilon=eps))
    ids = torch.zeros(logits.shape[0], 1, dtype=torch.long)
    one = EpsilonLogitsWarper(epsilon=eps, min_tokens_to_keep=1)(ids, logits.clone())
    two = EpsilonLogitsWarper(epsilon=eps, min_tokens_to_keep=2)(ids, logits.clone())
    assert torch.equal(kept(ours), kept(one))
    assert kept(ours).sum(-1).tolist() == [1] * logits.shape[0]
    assert kept(two).sum(-1).tolist() == [2] * logits.shape[0]
    assert torch.equal(kept(ours).nonzero()[:, 1], logits.argmax(-1))


def test_eta_threshold_is_sqrt_eps_times_exp_minus_h():
    """HF's docstring writes sqrt(eps * e^-H); its code (and Hewitt et al.) use sqrt(eps) * e^-H.

    Pick a row and an eps where the two readings keep different sets, and check that we
    agree with the code (and with the paper).
    """
    logits = random_logits(2, 3001)[1:2]
    p = torch.softmax(logits.to(torch.float64), -1)[0]
    h = float(-(p * p.log()).sum())
    found = False
    for eps in (1e-4, 3e-4, 1e-3, 3e-3):
        paper = min(eps, math.sqrt(eps) * math.exp(-h))
        other = min(eps, math.sqrt(eps * math.exp(-h)))
        if int((p >= paper).sum()) != int((p >= other).sum()):
            found = True
            ours = kept(process_logits(logits, SamplerSpec(eta=eps)))[0]
            assert torch.equal(ours, p >= paper)
    assert found
