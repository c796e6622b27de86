"""Small cases worked out by hand for every rule of SAMPLERS.md.

Logits are ``log`` of chosen probabilities, so p = softmax(z) is the list written out.
Expected kept sets and temperatures come from the formulas in SAMPLERS.md evaluated
with `math` on those lists, never from the library.
"""

from __future__ import annotations

import math

import pytest
import torch

from sss.samplers import EDT, CalibratedEpsilon, SamplerSpec, confidence_bin, process_logits

NEG_INF = float("-inf")


def logits_of(*rows) -> torch.Tensor:
    return torch.tensor([[math.log(p) for p in row] for row in rows], dtype=torch.float32)


def kept(out: torch.Tensor, row: int = 0) -> set[int]:
    return set((out[row] > NEG_INF).nonzero().flatten().tolist())


def run(probs, **spec) -> set[int]:
    return kept(process_logits(logits_of(probs), SamplerSpec(**spec)))


def entropy(probs) -> float:
    return -sum(p * math.log(p) for p in probs)


def tempered(probs, t):
    """softmax(log p / T), by hand."""
    w = [p ** (1.0 / t) for p in probs]
    return [x / sum(w) for x in w]


P5 = [0.5, 0.2, 0.15, 0.1, 0.05]  # sums to 1
DYADIC = [0.5, 0.25, 0.125, 0.125]  # exact in binary: thresholds can be hit exactly
SHUFFLED = [0.1, 0.4, 0.2, 0.3]  # argmax not at index 0


# ----------------------------------------------------------------- temperature
def test_temperature_scales_logits_and_keeps_everything():
    z = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    out = process_logits(z, SamplerSpec(temperature=0.5))
    assert out.tolist() == [[4.0, 2.0, 0.0, -2.0]]
    out = process_logits(z, SamplerSpec(temperature=2.0))
    assert out.tolist() == [[1.0, 0.5, 0.0, -0.5]]
    # softmax of the result is p ** (1/T), renormalised
    out = process_logits(logits_of(P5), SamplerSpec(temperature=0.7))
    torch.testing.assert_close(torch.softmax(out, -1)[0], torch.tensor(tempered(P5, 0.7)))


def test_temperature_one_is_identity():
    z = logits_of(P5)
    assert torch.equal(process_logits(z, SamplerSpec()), z)


@pytest.mark.parametrize(
    "spec", [SamplerSpec(temperature=0), SamplerSpec(greedy=True), SamplerSpec(greedy=True, temperature=0.5)]
)
def test_temperature_zero_and_greedy_keep_only_the_argmax(spec):
    z = torch.tensor([[0.1, 3.0, 2.9, -1.0, 2.99]])
    out = process_logits(z, spec)
    assert kept(out) == {1}
    assert math.isfinite(out[0, 1].item())


def test_greedy_keeps_every_token_tied_at_the_max():
    z = torch.tensor([[1.0, 3.0, 3.0, 2.0]])
    assert kept(process_logits(z, SamplerSpec(greedy=True))) == {1, 2}


# ----------------------------------------------------------------------- top_k
def test_top_k():
    assert run(SHUFFLED, top_k=1) == {1}
    assert run(SHUFFLED, top_k=2) == {1, 3}
    assert run(SHUFFLED, top_k=3) == {1, 3, 2}
    assert run(SHUFFLED, top_k=4) == {0, 1, 2, 3}
    assert run(SHUFFLED, top_k=100) == {0, 1, 2, 3}  # k > V: no restriction
    assert run(SHUFFLED, top_k=0) == {0, 1, 2, 3}  # 0 means off


def test_top_k_keeps_every_token_tied_at_the_kth_value():
    z = torch.tensor([[0.5, 1.0, 0.5, -1.0, 0.5, 0.2]])
    # 2nd largest value is 0.5, held by tokens 0, 2 and 4: all of them stay
    assert kept(process_logits(z, SamplerSpec(top_k=2))) == {0, 1, 2, 4}
    assert kept(process_logits(z, SamplerSpec(top_k=4))) == {0, 1, 2, 4}
    assert kept(process_logits(z, SamplerSpec(top_k=5))) == {0, 1, 2, 4, 5}
    assert kept(process_logits(z, SamplerSpec(top_k=1))) == {1}


# ----------------------------------------------------------------------- top_p
def test_top_p_includes_the_token_that_crosses_p():
    # sorted: 0.4 (token 1), 0.3 (token 3), 0.2 (token 2), 0.1 (token 0)
    assert run(SHUFFLED, top_p=0.3) == {1}  # 0.4 already reaches 0.3
    assert run(SHUFFLED, top_p=0.5) == {1, 3}  # 0.4 < 0.5, 0.7 crosses
    assert run(SHUFFLED, top_p=0.75) == {1, 3, 2}  # 0.7 < 0.75, 0.9 crosses
    assert run(SHUFFLED, top_p=0.95) == {0, 1, 2, 3}
    assert run(SHUFFLED, top_p=1.0) == {0, 1, 2, 3}


def test_top_p_mass_exactly_reaching_p_stops_there():
    # cumulative masses 0.5, 0.75, 0.875, 1 are exact in binary
    assert run(DYADIC, top_p=0.5) == {0}
    assert run(DYADIC, top_p=0.75) == {0, 1}
    assert run(DYADIC, top_p=0.76) == {0, 1, 2, 3}  # crossing token 2 ties with token 3


def test_top_p_keeps_ties_at_the_cut():
    # p = (0.4, 0.2, 0.2, 0.2): top_p = 0.5 is crossed by a 0.2 token, all three tie
    assert run([0.4, 0.2, 0.2, 0.2], top_p=0.5) == {0, 1, 2, 3}


def test_top_p_after_temperature():
    cold = tempered(DYADIC, 0.5)  # (0.7273, 0.1818, 0.0455, 0.0455)
    assert cold[0] > 0.7 > DYADIC[0]
    assert run(DYADIC, top_p=0.7) == {0, 1}
    assert run(DYADIC, top_p=0.7, temperature=0.5) == {0}


# ----------------------------------------------------------------------- min_p
def test_min_p():
    # p_max = 0.5
    assert run(P5, min_p=0.35) == {0, 1}  # p >= 0.175
    assert run(P5, min_p=0.25) == {0, 1, 2}  # p >= 0.125
    assert run(P5, min_p=0.15) == {0, 1, 2, 3}  # p >= 0.075
    assert run(P5, min_p=0.0) == {0, 1, 2, 3, 4}
    assert run(P5, min_p=1.0) == {0}
    assert run(DYADIC, min_p=0.25) == {0, 1, 2, 3}  # p >= 0.125 exactly: ties at the threshold kept


def test_min_p_after_temperature():
    hot = tempered(P5, 2.0)  # p ~ sqrt(p)
    threshold = 0.35 * max(hot)
    expected = {i for i, p in enumerate(hot) if p >= threshold}
    assert expected == {0, 1, 2, 3}
    assert run(P5, min_p=0.35, temperature=2.0) == expected


# --------------------------------------------------------------------- epsilon
def test_epsilon():
    assert run(P5, epsilon=0.12) == {0, 1, 2}
    assert run(P5, epsilon=0.06) == {0, 1, 2, 3}
    assert run(P5, epsilon=0.01) == {0, 1, 2, 3, 4}
    assert run(P5, epsilon=0.0) == {0, 1, 2, 3, 4}
    assert run(DYADIC, epsilon=0.125) == {0, 1, 2, 3}  # p == eps is kept
    assert run(P5, epsilon=0.6) == {0}  # nothing passes: the argmax stays
    assert run(SHUFFLED, epsilon=0.6) == {1}


# ------------------------------------------------------------------------- eta
def test_eta_uses_the_entropy():
    h = entropy(P5)
    assert h == pytest.approx(1.33314, abs=1e-4)
    eps = 0.12
    eta = min(eps, math.sqrt(eps) * math.exp(-h))  # = 0.0913: the entropy term wins
    assert eta == pytest.approx(0.09133, abs=1e-4)
    assert run(P5, eta=eps) == {i for i, p in enumerate(P5) if p >= eta} == {0, 1, 2, 3}
    assert run(P5, epsilon=eps) == {0, 1, 2}  # plain epsilon at the same eps differs


def test_eta_on_a_peaked_distribution_is_capped_at_eps():
    peaked = [0.9, 0.05, 0.03, 0.02]
    h = entropy(peaked)  # 0.428
    eps = 0.04
    eta = min(eps, math.sqrt(eps) * math.exp(-h))  # sqrt term 0.130 > eps: eta = eps
    assert eta == eps
    assert run(peaked, eta=eps) == {0, 1}
    eps = 0.3
    eta = min(eps, math.sqrt(eps) * math.exp(-h))  # 0.357 capped at 0.3
    assert run(peaked, eta=eps) == {i for i, p in enumerate(peaked) if p >= eta} == {0}


@pytest.mark.parametrize("t,eps", [(0.5, 0.15), (2.0, 0.2)])
def test_eta_entropy_is_measured_after_temperature(t, eps):
    scaled = tempered(P5, t)
    eta_scaled = min(eps, math.sqrt(eps) * math.exp(-entropy(scaled)))
    eta_raw = min(eps, math.sqrt(eps) * math.exp(-entropy(P5)))
    expected = {i for i, p in enumerate(scaled) if p >= eta_scaled}
    wrong = {i for i, p in enumerate(scaled) if p >= eta_raw}
    assert expected != wrong  # the case tells the two apart
    assert run(P5, eta=eps, temperature=t) == expected


# ------------------------------------------------------------------------- edt
def edt_temperature(probs, n, theta, t0):
    return t0 * n ** (theta / entropy(probs))


def implied_temperature(z: torch.Tensor, out: torch.Tensor) -> float:
    """T from out = z / T, read off the gap between the two largest logits."""
    zz, oo = z.to(torch.float64), out.to(torch.float64)
    return float((zz[0] - zz[1]) / (oo[0] - oo[1]))


@pytest.mark.parametrize("n,theta,t0", [(0.8, 1.0, 1.0), (0.5, 0.3, 0.7), (0.8, 2.0, 1.2)])
def test_edt_temperature_follows_the_formula_and_varies_with_entropy(n, theta, t0):
    flat, peaked = P5, [0.9, 0.05, 0.03, 0.02, 0.0 + 1e-9]
    peaked = [p / sum(peaked) for p in peaked]
    z = logits_of(flat, peaked)
    out = process_logits(z, SamplerSpec(edt=EDT(n=n, theta=theta, t0=t0)))
    t_flat = edt_temperature(flat, n, theta, t0)
    t_peaked = edt_temperature(peaked, n, theta, t0)
    assert abs(t_flat - t_peaked) > 0.05  # the formula itself differs by row
    for row, t in ((0, t_flat), (1, t_peaked)):
        assert kept(out, row) == set(range(5))  # EDT itself truncates nothing
        torch.testing.assert_close(out[row].to(torch.float64), z[row].to(torch.float64) / t, rtol=1e-5, atol=1e-5)
    assert implied_temperature(z[0], out[0]) == pytest.approx(t_flat, rel=1e-5)
    assert implied_temperature(z[1], out[1]) == pytest.approx(t_peaked, rel=1e-5)
    # not clamped to a constant T0 (the fault of the paper's code)
    assert implied_temperature(z[0], out[0]) != pytest.approx(implied_temperature(z[1], out[1]), rel=1e-3)


def test_edt_by_hand_numbers():
    # H(P5) = 1.33314 nats; T = 0.8 ** (1 / 1.33314) = 0.84581
    z = logits_of(P5)
    out = process_logits(z, SamplerSpec(edt=EDT(n=0.8, theta=1.0, t0=1.0)))
    assert implied_temperature(z[0], out[0]) == pytest.approx(0.84581, abs=1e-4)


def test_edt_theta_zero_is_constant_t0():
    z = logits_of(P5, [0.9, 0.04, 0.03, 0.02, 0.01])
    out = process_logits(z, SamplerSpec(edt=EDT(n=0.8, theta=0.0, t0=0.7)))
    torch.testing.assert_close(out, z / 0.7)


def test_edt_stacks_with_truncation_on_the_edt_distribution():
    t = edt_temperature(P5, 0.5, 1.0, 1.0)  # 0.5 ** (1/1.333) = 0.595
    cold = tempered(P5, t)
    expected = {i for i, p in enumerate(cold) if p >= 0.1}
    assert expected != {i for i, p in enumerate(P5) if p >= 0.1}
    assert run(P5, edt=EDT(n=0.5, theta=1.0, t0=1.0), epsilon=0.1) == expected


# ------------------------------------------------------------ greedy_threshold
def test_greedy_threshold():
    probs = [0.5, 0.3, 0.2]  # p_max = 0.5
    z = logits_of(probs)
    assert run(probs, greedy_threshold=0.6) == {0}  # 0.5 < 0.6: greedy
    out = process_logits(z, SamplerSpec(greedy_threshold=0.4))
    assert torch.equal(out, z)  # 0.5 >= 0.4: untouched
    assert run(probs, greedy_threshold=0.0) == {0, 1, 2}
    assert run(probs, greedy_threshold=1.0) == {0}


def test_greedy_threshold_at_p_max_exactly_is_untouched():
    # p_max = 0.5 exactly: greedy only when p_max < p_gt, so p_gt = 0.5 leaves the row alone
    assert run(DYADIC, greedy_threshold=0.5) == {0, 1, 2, 3}
    assert run(DYADIC, greedy_threshold=0.5000001) == {0}
    assert run([0.25] * 4, greedy_threshold=0.25) == {0, 1, 2, 3}


def test_greedy_threshold_reads_p_max_after_temperature():
    probs = [0.5, 0.3, 0.2]
    cold, hot = tempered(probs, 0.5), tempered(probs, 2.0)
    assert max(cold) == pytest.approx(0.6579, abs=1e-4) and max(hot) == pytest.approx(0.4154, abs=1e-4)
    # p_gt = 0.6: greedy at T = 1 (0.5), untouched at T = 0.5 (0.658)
    assert run(probs, greedy_threshold=0.6) == {0}
    assert run(probs, greedy_threshold=0.6, temperature=0.5) == {0, 1, 2}
    # p_gt = 0.45: untouched at T = 1, greedy at T = 2 (0.415)
    assert run(probs, greedy_threshold=0.45) == {0, 1, 2}
    assert run(probs, greedy_threshold=0.45, temperature=2.0) == {0}


# ------------------------------------------------------------------------ bins
def test_bins_are_right_closed():
    p = torch.tensor([0.0, 1e-9, 0.1, 0.25, 0.5, 0.5 + 1e-6, 0.999, 1.0], dtype=torch.float64)
    assert confidence_bin(p, 10).tolist() == [1, 1, 1, 3, 5, 6, 10, 10]
    q = torch.tensor([0.25, 0.2500001, 0.5, 0.75, 0.76, 1.0], dtype=torch.float64)
    assert confidence_bin(q, 4).tolist() == [1, 2, 2, 3, 4, 4]
    assert confidence_bin(torch.tensor([0.0, 0.3, 1.0]), 1).tolist() == [1, 1, 1]


def bin_of(p_max: float, n: int = 10) -> int:
    """((m-1)/n, m/n] by hand, for p_max well away from a boundary."""
    return max(1, math.ceil(p_max * n))


# ------------------------------------------------------------- calibrated_topk
# p_max = 0.35 (bin 4), 0.85 (bin 9), 0.05 (bin 1); every row has 12 tokens
ROW_BIN4 = [0.35, 0.2, 0.12, 0.09, 0.07, 0.05, 0.04, 0.03, 0.02, 0.015, 0.01, 0.005]
ROW_BIN9 = [0.85, 0.05, 0.03, 0.02, 0.015, 0.01, 0.008, 0.006, 0.005, 0.003, 0.002, 0.001]
ROW_BIN1 = [0.05 + 0.0004 * i for i in range(12)]  # nearly flat; argmax is token 11
ROW_BIN1 = [p / sum(ROW_BIN1) for p in ROW_BIN1]
KS = (11, 10, 9, 8, 7, 6, 5, 4, 3, 2)  # bin 1 first: k_m = 12 - m


def top_ranks(probs, k):
    order = sorted(range(len(probs)), key=lambda i: -probs[i])
    return set(order[:k])


def test_calibrated_topk_per_bin():
    rows = [ROW_BIN4, ROW_BIN9, ROW_BIN1]
    assert [bin_of(max(r)) for r in rows] == [4, 9, 1]
    out = process_logits(logits_of(*rows), SamplerSpec(calibrated_topk=KS))
    for i, r in enumerate(rows):
        assert kept(out, i) == top_ranks(r, KS[bin_of(max(r)) - 1])
    assert [len(kept(out, i)) for i in range(3)] == [8, 3, 11]


def test_calibrated_topk_high_first_reverses_the_list():
    rows = [ROW_BIN4, ROW_BIN9, ROW_BIN1]
    spec = SamplerSpec(calibrated_topk=KS, calibrated_topk_order="high_first")
    assert spec.calibrated_topk == tuple(reversed(KS))
    out = process_logits(logits_of(*rows), spec)
    # the list now names bin 10 first: bin m gets KS[10 - m]
    assert [len(kept(out, i)) for i in range(3)] == [KS[6], KS[1], KS[9]] == [5, 10, 2]
    assert kept(out, 0) == top_ranks(ROW_BIN4, 5)


def test_calibrated_topk_bin_is_measured_after_temperature():
    hot = tempered(ROW_BIN4, 3.0)
    assert bin_of(max(hot)) == 2
    assert run(ROW_BIN4, calibrated_topk=KS, temperature=3.0) == top_ranks(hot, KS[1])


def test_calibrated_topk_bin_boundary_is_right_closed():
    # p_max = 0.5 exactly: bin 5 = (0.4, 0.5], not bin 6
    ks = (9, 9, 9, 9, 1, 3, 9, 9, 9, 9)
    assert run(DYADIC, calibrated_topk=ks) == {0}


def test_calibrated_topk_with_other_bin_counts():
    # 4 bins: p_max = 0.35 falls in (0.25, 0.5] = bin 2
    assert run(ROW_BIN4, calibrated_topk=(1, 3, 5, 7), bins=4) == top_ranks(ROW_BIN4, 3)


# ---------------------------------------------------------- calibrated_epsilon
CAL_ROW = [0.4, 0.2, 0.15, 0.1, 0.06, 0.045, 0.025, 0.02]


def test_calibrated_epsilon_power_law():
    a, b, c = 0.3, 1.2, 0.05
    expected = {i for i, p in enumerate(CAL_ROW) if 10**a * p**b >= c}
    assert expected == {0, 1, 2, 3, 4}
    assert run(CAL_ROW, calibrated_epsilon=CalibratedEpsilon(a=a, b=b, c=c)) == expected
    # a stricter c, and a mapping instead of the dataclass
    expected = {i for i, p in enumerate(CAL_ROW) if 10**a * p**b >= 0.2}
    assert expected == {0, 1, 2}
    assert run(CAL_ROW, calibrated_epsilon={"a": a, "b": b, "c": 0.2}) == expected
    # c = 0: every token passes
    assert run(CAL_ROW, calibrated_epsilon=CalibratedEpsilon(a=a, b=b, c=0.0)) == set(range(8))


def test_calibrated_epsilon_equals_epsilon_sampling():
    cal = CalibratedEpsilon(a=0.5, b=1.5, c=0.02)
    eps = (0.02 / 10**0.5) ** (1 / 1.5)  # 0.0342
    assert cal.epsilon == pytest.approx(eps, rel=1e-12)
    assert 0 < eps < 1
    g = torch.Generator().manual_seed(5)
    z = torch.randn(8, 300, generator=g) * torch.linspace(0.5, 4, 8).unsqueeze(1)
    for t in (0.7, 1.0, 1.5):
        a = process_logits(z, SamplerSpec(calibrated_epsilon=cal, temperature=t))
        b = process_logits(z, SamplerSpec(epsilon=cal.epsilon, temperature=t))
        assert torch.equal(a > NEG_INF, b > NEG_INF)
        sizes = (a > NEG_INF).sum(-1)
        assert ((sizes > 1) & (sizes < 300)).any()


# -------------------------------------------------------------- confidence_bin
def test_confidence_bin_samples_only_inside_bin_m():
    rows = [ROW_BIN4, ROW_BIN9, ROW_BIN1]
    z = logits_of(*rows)
    out = process_logits(z, SamplerSpec(confidence_bin=4))
    assert kept(out, 0) == set(range(12))
    assert torch.equal(out[0], z[0])
    assert kept(out, 1) == {0}
    assert kept(out, 2) == {11}
    out = process_logits(z, SamplerSpec(confidence_bin=9))
    assert [len(kept(out, i)) for i in range(3)] == [1, 12, 1]


# --------------------------------------------------------------------- stacking
def test_min_p_plus_greedy_threshold():
    probs = [0.5, 0.3, 0.15, 0.05]
    assert run(probs, min_p=0.2) == {0, 1, 2}  # p >= 0.1
    assert run(probs, min_p=0.2, greedy_threshold=0.4) == {0, 1, 2}  # 0.5 >= 0.4: no restriction
    assert run(probs, min_p=0.2, greedy_threshold=0.6) == {0}  # 0.5 < 0.6: greedy


def test_top_k_plus_top_p_on_one_distribution():
    probs = [0.4, 0.3, 0.2, 0.1]
    assert run(probs, top_k=3, top_p=0.6) == {0, 1}  # top-p {0, 1} & top-k {0, 1, 2}
    assert run(probs, top_k=1, top_p=0.9) == {0}
    # renormalising after top-k=2 would give (0.571, 0.429) and top-p(0.5) = {0};
    # on one distribution top-p(0.5) = {0, 1}
    assert run(probs, top_k=2, top_p=0.5) == {0, 1}


def test_min_p_plus_top_p_without_renormalisation():
    probs = [0.4, 0.3, 0.2, 0.1]
    # min_p = 0.3 drops token 3 (0.1 < 0.12); renormalised, (0.444, 0.333, 0.222) would reach
    # 0.75 at token 1. On the full distribution 0.7 < 0.75 and token 2 crosses.
    assert run(probs, min_p=0.3) == {0, 1, 2}
    assert run(probs, top_p=0.75) == {0, 1, 2}
    assert run(probs, min_p=0.3, top_p=0.75) == {0, 1, 2}


def test_top_k_plus_epsilon_without_renormalisation():
    probs = [0.4, 0.3, 0.2, 0.1]
    # after top-k=2 a renormalised 0.3 would be 0.43 >= 0.35; on the full distribution it is 0.3
    assert run(probs, top_k=2, epsilon=0.35) == {0}
    assert run(probs, top_k=3, epsilon=0.15) == {0, 1, 2}
    assert run(probs, top_k=2, epsilon=0.15) == {0, 1}


def test_stack_with_temperature_and_many_rules():
    t = 0.8
    p = tempered(P5, t)
    pmax = max(p)
    expected = {i for i, q in enumerate(p) if q >= 0.1 * pmax and q >= 0.04}  # min_p and epsilon
    expected &= top_ranks(p, 3)  # top_k
    assert expected == {0, 1, 2}
    assert run(P5, temperature=t, min_p=0.1, epsilon=0.04, top_k=3, greedy_threshold=0.3) == expected


def test_mixed_batch_each_row_its_own_rules():
    z = logits_of(P5, P5, P5, P5)
    specs = [SamplerSpec(top_k=2), SamplerSpec(min_p=0.25), SamplerSpec(epsilon=0.06), SamplerSpec(greedy=True)]
    out = process_logits(z, specs)
    assert [kept(out, i) for i in range(4)] == [{0, 1}, {0, 1, 2}, {0, 1, 2, 3}, {0}]
