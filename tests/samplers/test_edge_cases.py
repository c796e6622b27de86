"""Bad or unusual logits and shapes (SAMPLERS.md, "Bad input")."""

from __future__ import annotations

import math

import pytest
import torch

from sss.samplers import EDT, CalibratedEpsilon, SamplerSpec, process_logits

NEG_INF = float("-inf")
NAN = float("nan")
INF = float("inf")

# one spec per rule (and a few stacks), used to sweep the edge cases
SPECS = [
    SamplerSpec(),
    SamplerSpec(temperature=0.7),
    SamplerSpec(temperature=0.0),
    SamplerSpec(greedy=True),
    SamplerSpec(top_k=2),
    SamplerSpec(top_p=0.9),
    SamplerSpec(min_p=0.1),
    SamplerSpec(epsilon=0.05),
    SamplerSpec(eta=0.05),
    SamplerSpec(edt=EDT()),
    SamplerSpec(edt=EDT(n=2.0, theta=1.0)),
    SamplerSpec(greedy_threshold=0.5),
    SamplerSpec(calibrated_topk=(1, 1, 2, 2, 3, 3, 4, 4, 5, 5)),
    SamplerSpec(calibrated_epsilon=CalibratedEpsilon(a=0.2, b=1.1, c=0.05)),
    SamplerSpec(confidence_bin=3),
    SamplerSpec(
        temperature=1.3,
        top_k=3,
        top_p=0.8,
        min_p=0.05,
        epsilon=0.01,
        eta=0.01,
        greedy_threshold=0.2,
        calibrated_topk=(3,) * 10,
        confidence_bin=2,
    ),
]
IDS = [",".join(s.enabled()) or "default" for s in SPECS]


def kept(out: torch.Tensor) -> torch.Tensor:
    return out > NEG_INF


def kept_set(out: torch.Tensor, row: int = 0) -> set[int]:
    return set(kept(out[row]).nonzero().flatten().tolist())


# ------------------------------------------------------------------------- NaN
@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_nan_logits_are_excluded(spec):
    z = torch.tensor([[1.0, NAN, 0.5, NAN, -0.3, 0.9]])
    out = process_logits(z, spec)
    assert not torch.isnan(out).any()
    assert not kept(out)[0, [1, 3]].any()
    assert kept_set(out) >= {0}
    # the same as processing the row with the NaNs masked out
    assert torch.equal(out, process_logits(z.nan_to_num(nan=NEG_INF), spec))


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_all_nan_row_keeps_nothing_and_leaves_other_rows_alone(spec):
    good = torch.tensor([[1.0, 0.2, 0.5, -1.0]])
    z = torch.cat([good, torch.full((1, 4), NAN), good])
    out = process_logits(z, spec)
    assert not torch.isnan(out).any()
    assert not kept(out[1]).any()
    alone = process_logits(good, spec)
    assert torch.equal(out[0:1], alone) and torch.equal(out[2:3], alone)


# ------------------------------------------------------------------------ +inf
@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_positive_inf_logits_keep_only_the_inf_tokens(spec):
    z = torch.tensor([[1.0, INF, 0.5, INF, 30.0], [2.0, 1.0, INF, 0.0, -1.0]])
    out = process_logits(z, spec)
    assert not torch.isnan(out).any()
    assert torch.isfinite(out[kept(out)]).all()
    assert kept_set(out, 0) == {1, 3}  # the two +inf tokens tie: both stay
    assert out[0, 1] == out[0, 3]  # and are equally likely
    assert kept_set(out, 1) == {2}


def test_positive_inf_with_nan_and_neg_inf():
    z = torch.tensor([[NAN, INF, NEG_INF, 3.0]])
    out = process_logits(z, SamplerSpec(top_p=0.5))
    assert kept_set(out) == {1}


# ------------------------------------------------------------------- all -inf
@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_all_neg_inf_row(spec):
    g = torch.Generator().manual_seed(0)
    good = torch.randn(2, 50, generator=g) * 2
    z = torch.cat([good[:1], torch.full((1, 50), NEG_INF), good[1:]])
    out = process_logits(z, spec)  # no exception
    assert torch.equal(out[1], torch.full((50,), NEG_INF))
    assert not torch.isnan(out).any()
    assert torch.equal(out[[0, 2]], process_logits(good, spec))


def test_all_neg_inf_batch_and_mixed_specs():
    z = torch.full((3, 5), NEG_INF)
    out = process_logits(z, [SamplerSpec(top_p=0.5), SamplerSpec(edt=EDT()), SamplerSpec(eta=0.1)])
    assert torch.equal(out, z)


def test_single_finite_token_among_neg_inf():
    z = torch.tensor([[NEG_INF, NEG_INF, 4.0, NEG_INF]])
    for spec in SPECS:
        out = process_logits(z, spec)
        assert kept_set(out) == {2}, spec
        assert math.isfinite(out[0, 2].item())


# ----------------------------------------------------------- half precision
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_half_precision_logits(dtype, spec):
    g = torch.Generator().manual_seed(1)
    z = (torch.randn(4, 300, generator=g) * torch.tensor([[0.5], [1.5], [3.0], [6.0]])).to(dtype)
    z[0, :5] = z[0, 5]  # ties, which half precision makes common
    out = process_logits(z, spec)
    assert out.dtype == torch.float32
    assert z.dtype == dtype  # the input is left alone
    reference = process_logits(z.to(torch.float32), spec)  # the same values in float32
    assert torch.equal(kept(out), kept(reference))
    assert torch.equal(out, reference)


def test_half_precision_extremes():
    z = torch.tensor([[65504.0, -65504.0, 0.0, NEG_INF]], dtype=torch.float16)
    out = process_logits(z, SamplerSpec(temperature=0.5, top_p=0.99, eta=0.01))
    assert out.dtype == torch.float32
    assert kept_set(out) == {0}
    assert out[0, 0].item() == pytest.approx(65504.0 / 0.5)


# ----------------------------------------------------------------- V = 1, B = 0
@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_single_token_vocabulary(spec):
    z = torch.tensor([[3.0], [-2.0], [0.0]])
    out = process_logits(z, spec)
    assert out.shape == (3, 1)
    assert kept(out).all()
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_empty_batch(spec):
    z = torch.empty(0, 7)
    out = process_logits(z, spec)
    assert out.shape == (0, 7) and out.dtype == torch.float32
    out = process_logits(z, [])
    assert out.shape == (0, 7)
    out = process_logits(torch.empty(0, 7, dtype=torch.bfloat16), spec)
    assert out.shape == (0, 7) and out.dtype == torch.float32


# ------------------------------------------------------------------------ EDT
def test_edt_near_zero_entropy_is_greedy_with_a_finite_logit():
    z = torch.full((1, 1000), -40.0)
    z[0, 123] = 0.0  # H ~ 1000 * 40 * e^-40: about 2e-13
    probs = torch.softmax(z.to(torch.float64), -1)
    h = float(-(probs * probs.log()).sum())
    assert 0 < h < 1e-10
    # T = 1.0 * 0.8 ** (1 / H): zero for any float, so the row is greedy
    out = process_logits(z, SamplerSpec(edt=EDT(n=0.8, theta=1.0, t0=1.0)))
    assert kept_set(out) == {123}
    assert math.isfinite(out[0, 123].item())
    assert not torch.isnan(out).any()


def test_edt_one_hot_row_and_exact_zero_entropy():
    z = torch.tensor([[0.0, -200.0, -300.0], [5.0, NEG_INF, NEG_INF]])  # softmax is exactly one-hot
    out = process_logits(z, SamplerSpec(edt=EDT(n=0.5, theta=1.0)))
    assert kept_set(out, 0) == {0} and kept_set(out, 1) == {0}
    assert torch.isfinite(out[kept(out)]).all()


def test_edt_with_n_above_one_at_low_entropy_keeps_a_token():
    """N > 1 sends T to +inf as H -> 0. The row must not turn NaN or lose every token.

    Before the fix, [8, 0, -inf] (H = 0.0027 nats, N = 2) gave T = 2 ** 370 = inf in
    float32, -inf / inf = NaN, and the row came back all -inf.
    """
    z = torch.tensor([[8.0, 0.0, NEG_INF], [5.0, NEG_INF, -195.0], [1.0, 0.0, -1.0]])
    out = process_logits(z, SamplerSpec(edt=EDT(n=2.0, theta=1.0)))
    assert not torch.isnan(out).any()
    assert kept(out).any(dim=-1).all()
    assert kept_set(out, 0) == {0, 1}  # T huge: near uniform over finite tokens
    assert kept_set(out, 1) == {0, 2}
    assert torch.isfinite(out[kept(out)]).all()
    assert (out[0, 0] >= out[0, 1]).item()
    # the finite-temperature row is unaffected: T = 2 ** (1 / H) with H of softmax(1, 0, -1)
    p = torch.softmax(z[2].to(torch.float64), -1)
    t = 2.0 ** (1.0 / float(-(p * p.log()).sum()))
    torch.testing.assert_close(out[2].to(torch.float64), z[2].to(torch.float64) / t, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------- calibrated epsilon
def test_calibrated_epsilon_extreme_power_laws():
    """(c / 10**a) ** (1 / b) can overflow a Python float; the sampler must not raise.

    Before the fix, a = -10, b = 0.01 raised OverflowError when the batch was built.
    """
    z = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    huge = CalibratedEpsilon(a=-10.0, b=0.01, c=0.05)  # eps = 10 ** 870: nothing passes
    assert huge.epsilon == math.inf
    assert kept_set(process_logits(z, SamplerSpec(calibrated_epsilon=huge))) == {0}
    tiny = CalibratedEpsilon(a=400.0, b=1.0, c=0.05)  # eps = 5e-402: everything passes
    assert tiny.epsilon == pytest.approx(0.0, abs=1e-300)
    assert kept_set(process_logits(z, SamplerSpec(calibrated_epsilon=tiny))) == {0, 1, 2, 3}


# ----------------------------------------------------------------- shape, dtype
@pytest.mark.parametrize(
    "dtype,out_dtype",
    [
        (torch.float32, torch.float32),
        (torch.float16, torch.float32),
        (torch.bfloat16, torch.float32),
        (torch.float64, torch.float64),
    ],
)
@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_output_shape_and_dtype(dtype, out_dtype, spec):
    g = torch.Generator().manual_seed(2)
    z = (torch.randn(3, 64, generator=g) * 3).to(dtype)
    before = z.clone()
    out = process_logits(z, spec)
    assert out.shape == (3, 64)
    assert out.dtype == out_dtype
    assert out.device == z.device
    assert torch.equal(z, before), "process_logits must not modify its input"
    assert kept(out).any(dim=-1).all()


def test_float64_matches_float32_kept_sets():
    """float64 logits (top_p used to fail there: index_put of Double into Float)."""
    g = torch.Generator().manual_seed(3)
    z = torch.randn(4, 200, generator=g, dtype=torch.float64) * 2
    for spec in SPECS:
        a = process_logits(z, spec)
        b = process_logits(z.to(torch.float32), spec)
        assert torch.equal(kept(a), kept(b)), spec


def test_wrong_number_of_specs():
    z = torch.zeros(3, 5)
    with pytest.raises(ValueError, match="3"):
        process_logits(z, [SamplerSpec(), SamplerSpec()])
    with pytest.raises(ValueError):
        process_logits(z, [SamplerSpec()] * 4)
    with pytest.raises(ValueError):
        process_logits(z, [])


def test_logits_must_be_two_dimensional():
    with pytest.raises(ValueError):
        process_logits(torch.zeros(5), SamplerSpec())
    with pytest.raises(ValueError):
        process_logits(torch.zeros(2, 3, 4), SamplerSpec())


def test_one_spec_applies_to_every_row():
    g = torch.Generator().manual_seed(4)
    z = torch.randn(5, 30, generator=g)
    spec = SamplerSpec(top_k=3, temperature=0.5)
    assert torch.equal(process_logits(z, spec), process_logits(z, [spec] * 5))
