"""Property tests: random logits, random valid specs (any subset of rules, mixed per row).

Properties from SAMPLERS.md:
* the kept set is never empty and always holds the argmax (every token tied at the max);
* it is a prefix of the vocabulary sorted by logit: every kept token has a strictly larger
  logit than every dropped one (so ties are never split);
* rows are independent: a mixed batch equals row-by-row processing;
* stacked rules keep exactly the intersection of the sets each rule keeps alone (under the
  same temperature), and truncation never changes the value of a kept token.
"""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sss.samplers import EDT, CalibratedEpsilon, SamplerSpec, process_logits

NEG_INF = float("-inf")
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TRUNCATION_RULES = (
    "top_k",
    "top_p",
    "min_p",
    "epsilon",
    "eta",
    "greedy_threshold",
    "calibrated_topk",
    "calibrated_epsilon",
    "confidence_bin",
)


@st.composite
def logits_rows(draw, rows=None):
    """[B, V] float32 logits: continuous values, or small integers (many ties)."""
    b = draw(st.integers(1, 5)) if rows is None else rows
    v = draw(st.integers(1, 40))
    kind = draw(st.sampled_from(["normal", "floats", "ties"]))
    if kind == "normal":  # realistic, moderately peaked rows
        g = torch.Generator().manual_seed(draw(st.integers(0, 2**32 - 1)))
        spread = draw(st.sampled_from([0.3, 1.0, 2.0, 4.0]))
        z = torch.randn(b, v, generator=g) * spread
    else:
        if kind == "floats":
            values = st.floats(-30, 30, allow_nan=False, width=32)
        else:
            values = st.integers(-4, 4).map(float)
        flat = draw(st.lists(values, min_size=b * v, max_size=b * v))
        scale = draw(st.sampled_from([0.1, 1.0, 5.0]))
        z = torch.tensor(flat, dtype=torch.float32).reshape(b, v) * scale
    if draw(st.integers(0, 3)) == 0:  # some masked tokens (a row may end up all -inf)
        masked = draw(st.lists(st.booleans(), min_size=b * v, max_size=b * v))
        z = z.masked_fill(torch.tensor(masked).reshape(b, v), NEG_INF)
    return z


@st.composite
def base_specs(draw):
    """The temperature part of a spec: plain T, T = 0, greedy or EDT."""
    kind = draw(st.sampled_from(["one", "t", "zero", "greedy", "edt"]))
    if kind == "t":
        return {"temperature": draw(st.floats(0.05, 4.0))}
    if kind == "zero":
        return {"temperature": 0.0}
    if kind == "greedy":
        return {"greedy": True}
    if kind == "edt":
        return {"edt": EDT(n=draw(st.floats(0.05, 3.0)), theta=draw(st.floats(0.0, 3.0)), t0=draw(st.floats(0.1, 3.0)))}
    return {}


@st.composite
def rule_values(draw, bins):
    """Values for a random subset of the truncation rules."""
    names = draw(st.sets(st.sampled_from(TRUNCATION_RULES)))
    k = st.integers(1, 45)

    def typical(values, strategy):  # usual settings half the time, anything valid otherwise
        return draw(st.one_of(st.sampled_from(values), strategy))

    out = {}
    for name in names:
        if name == "top_k":
            out[name] = typical([2, 5, 10], st.integers(0, 45))
        elif name == "top_p":
            out[name] = typical([0.5, 0.75, 0.9, 0.95], st.floats(0.001, 1.0))
        elif name == "min_p":
            out[name] = typical([0.05, 0.1, 0.3], st.floats(0.0, 1.0))
        elif name == "greedy_threshold":
            out[name] = typical([0.2, 0.4, 0.6], st.floats(0.0, 1.0))
        elif name in ("epsilon", "eta"):
            out[name] = typical([0.01, 0.03, 0.1], st.floats(0.0, 0.9))
        elif name == "calibrated_topk":
            out[name] = tuple(draw(st.lists(k, min_size=bins, max_size=bins)))
        elif name == "calibrated_epsilon":
            out[name] = CalibratedEpsilon(a=draw(st.floats(-2, 2)), b=draw(st.floats(0.1, 3)), c=draw(st.floats(0, 1)))
        elif name == "confidence_bin":
            out[name] = draw(st.integers(1, bins))
    return out


@st.composite
def spec_parts(draw):
    bins = draw(st.sampled_from([10, 10, 1, 3]))
    base = draw(base_specs())
    rules = draw(rule_values(bins))
    order = draw(st.sampled_from(["low_first", "high_first"]))
    extra = {"bins": bins}
    if "calibrated_topk" in rules:
        extra["calibrated_topk_order"] = order
    return base, rules, extra


def build(base, rules, extra) -> SamplerSpec:
    return SamplerSpec(**base, **rules, **extra)


def kept(out: torch.Tensor) -> torch.Tensor:
    return out > NEG_INF


@SETTINGS
@given(data=st.data())
def test_kept_set_is_a_nonempty_prefix_holding_the_argmax(data):
    logits = data.draw(logits_rows())
    specs = [build(*data.draw(spec_parts())) for _ in range(logits.shape[0])]
    out = process_logits(logits, specs)
    assert out.shape == logits.shape and out.dtype == torch.float32
    assert not torch.isnan(out).any()
    mask = kept(out)
    for i in range(logits.shape[0]):
        z = logits[i]
        if not torch.isfinite(z).any():
            assert not mask[i].any(), "an all -inf row stays all -inf"
            continue
        assert mask[i].any()
        assert mask[i][z == z.max()].all(), "every token tied at the max is kept"
        assert torch.isfinite(out[i][mask[i]]).all()
        if (~mask[i]).any():
            assert z[mask[i]].min() > z[~mask[i]].max(), "kept set is not a prefix of the sorted vocabulary"


@SETTINGS
@given(data=st.data())
def test_mixed_batch_equals_row_by_row(data):
    logits = data.draw(logits_rows())
    specs = [build(*data.draw(spec_parts())) for _ in range(logits.shape[0])]
    out = process_logits(logits, specs)
    for i, spec in enumerate(specs):
        alone = process_logits(logits[i : i + 1], spec)
        assert torch.equal(out[i : i + 1], alone), f"row {i} depends on the other rows ({spec})"


@SETTINGS
@given(data=st.data())
def test_stacked_rules_keep_the_intersection_of_each_rule_alone(data):
    logits = data.draw(logits_rows())
    base, rules, extra = data.draw(spec_parts())
    stacked = process_logits(logits, build(base, rules, extra))
    untruncated = process_logits(logits, build(base, {}, extra))
    expected = kept(untruncated)
    for name, value in rules.items():
        expected &= kept(process_logits(logits, build(base, {name: value}, extra)))
    assert torch.equal(kept(stacked), expected), (base, rules)
    # truncation only masks: the kept values are the temperature-scaled logits themselves
    assert torch.equal(stacked[kept(stacked)], untruncated[kept(stacked)])


@SETTINGS
@given(logits=logits_rows(), t=st.floats(0.05, 4.0))
def test_plain_temperature_scales_and_keeps_every_finite_token(logits, t):
    out = process_logits(logits, SamplerSpec(temperature=t))
    assert torch.equal(kept(out), logits > NEG_INF)
    torch.testing.assert_close(out.to(torch.float64), logits.to(torch.float64) / t, rtol=1e-6, atol=1e-30)


@SETTINGS
@given(data=st.data())
def test_rules_are_monotone_in_their_parameter(data):
    """A stricter parameter never keeps more tokens (and keeps a subset)."""
    logits = data.draw(logits_rows())
    rule = data.draw(st.sampled_from(["top_k", "top_p", "min_p", "epsilon", "eta"]))
    if rule == "top_k":
        loose, strict = sorted(data.draw(st.lists(st.integers(1, 45), min_size=2, max_size=2)), reverse=True)
    elif rule == "top_p":
        loose, strict = sorted(data.draw(st.lists(st.floats(0.001, 1.0), min_size=2, max_size=2)), reverse=True)
    else:
        strict, loose = sorted(data.draw(st.lists(st.floats(0.0, 0.9), min_size=2, max_size=2)), reverse=True)
    a = kept(process_logits(logits, SamplerSpec(**{rule: loose})))
    b = kept(process_logits(logits, SamplerSpec(**{rule: strict})))
    assert (b <= a).all(), (rule, loose, strict)
