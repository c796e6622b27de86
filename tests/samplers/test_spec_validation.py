"""`SamplerSpec` validation: every bad value fails at construction with a `SamplerConfigError`
whose message names the parameter, the value and the allowed range."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest
import torch

from sss.samplers import EDT, CalibratedEpsilon, SamplerConfigError, SamplerSpec, process_logits

NAN = float("nan")
INF = float("inf")


def assert_names(message: str, parameter: str, value: str, *bounds: str, comparison: bool = True) -> None:
    """The message names `parameter`, shows `value`, and states a range with `bounds`."""
    assert re.search(rf"\b{re.escape(parameter)}\b", message), (parameter, message)
    assert value in message, (value, message)
    for bound in bounds:
        assert bound in message, (bound, message)
    if comparison:
        assert re.search(r"<=|>=|<|>|one of|integer|true or false", message), message


# (kwargs, parameter named in the message, value as shown, range fragments)
BAD = [
    ({"min_p": 1.5}, "min_p", "1.5", "0", "<= 1"),
    ({"min_p": -0.1}, "min_p", "-0.1", "0 <="),
    ({"min_p": NAN}, "min_p", "nan", "<= 1"),
    ({"top_k": -1}, "top_k", "-1", ">= 1"),
    ({"top_k": 2.5}, "top_k", "2.5", ">= 1"),
    ({"top_k": "5"}, "top_k", "'5'", ">= 1"),
    ({"top_p": 0}, "top_p", "0", "0 <", "<= 1"),
    ({"top_p": 1.5}, "top_p", "1.5", "<= 1"),
    ({"top_p": -0.2}, "top_p", "-0.2", "0 <"),
    ({"epsilon": 1}, "epsilon", "1", "< 1"),
    ({"epsilon": -1e-3}, "epsilon", "-0.001", "0 <="),
    ({"eta": -0.1}, "eta", "-0.1", "0 <=", "< 1"),
    ({"eta": 1.0}, "eta", "1.0", "< 1"),
    ({"greedy_threshold": 2}, "greedy_threshold", "2", "<= 1"),
    ({"greedy_threshold": -0.5}, "greedy_threshold", "-0.5", "0 <="),
    ({"temperature": -1}, "temperature", "-1", ">= 0"),
    ({"temperature": NAN}, "temperature", "nan", ">= 0"),
    ({"temperature": INF}, "temperature", "inf", ">= 0"),
    ({"confidence_bin": 11}, "confidence_bin", "11", "1 <=", "<= 10"),
    ({"confidence_bin": 0}, "confidence_bin", "0", "1 <=", "<= 10"),
    ({"confidence_bin": 5, "bins": 4}, "confidence_bin", "5", "<= 4"),
    ({"calibrated_topk": (1,) * 9}, "calibrated_topk", "[1, 1, 1, 1, 1, 1, 1, 1, 1]", "10", ">= 1"),
    ({"calibrated_topk": (1,) * 11}, "calibrated_topk", "11", "10"),
    ({"calibrated_topk": (1, 2, 3, 0, 5, 6, 7, 8, 9, 10)}, "calibrated_topk", "0", ">= 1"),
    ({"calibrated_topk": (1, 2, 3), "bins": 4}, "calibrated_topk", "[1, 2, 3]", "4"),
    ({"calibrated_topk": "abcdefghij"}, "calibrated_topk", "'abcdefghij'", ">= 1"),
    (
        {"calibrated_topk": (1,) * 10, "calibrated_topk_order": "reversed"},
        "calibrated_topk_order",
        "'reversed'",
        "low_first",
        "high_first",
    ),
    ({"bins": 0}, "bins", "0", ">= 1"),
    ({"edt": EDT(), "temperature": 0.7}, "temperature", "0.7", "1.0", "edt"),
    ({"edt": {"n": 0.8, "theta": 1.0, "t0": 1.0}, "temperature": 0.0}, "temperature", "0.0", "edt"),
    # bools are not numbers
    ({"top_k": True}, "top_k", "True", ">= 1"),
    ({"min_p": True}, "min_p", "True", "<= 1"),
    ({"top_p": False}, "top_p", "False", "<= 1"),
    ({"temperature": True}, "temperature", "True", ">= 0"),
    ({"epsilon": False}, "epsilon", "False", "< 1"),
    ({"confidence_bin": True}, "confidence_bin", "True", "<= 10"),
    ({"calibrated_topk": (True,) * 10}, "calibrated_topk", "True", ">= 1"),
    ({"greedy": 1}, "greedy", "1", "true or false"),
    ({"greedy": "yes"}, "greedy", "'yes'", "true or false"),
]


@pytest.mark.parametrize(
    "kwargs,parameter,value,bounds",
    [(b[0], b[1], b[2], b[3:]) for b in BAD],
    ids=[f"{'+'.join(b[0])}={b[2]}" for b in BAD],
)
def test_bad_value_is_rejected_with_a_helpful_message(kwargs, parameter, value, bounds):
    with pytest.raises(SamplerConfigError) as info:
        SamplerSpec(**kwargs)
    # edt + temperature: the only allowed value, 1.0, is named instead of a range
    assert_names(str(info.value), parameter, value, *bounds, comparison="edt" not in kwargs)


BAD_EDT = [
    ({"n": 0}, "edt.n", "0", "N > 0"),
    ({"n": -0.5}, "edt.n", "-0.5", "N > 0"),
    ({"n": NAN}, "edt.n", "nan", "N > 0"),
    ({"n": True}, "edt.n", "True", "N > 0"),
    ({"n": INF}, "edt.n", "inf", "N > 0"),
    ({"theta": -1}, "edt.theta", "-1", "theta >= 0"),
    ({"t0": 0}, "edt.t0", "0", "T0 > 0"),
    ({"t0": -2.0}, "edt.t0", "-2.0", "T0 > 0"),
]


@pytest.mark.parametrize("kwargs,parameter,value,bound", BAD_EDT, ids=[f"{b[1]}={b[2]}" for b in BAD_EDT])
def test_bad_edt(kwargs, parameter, value, bound):
    with pytest.raises(SamplerConfigError) as info:
        EDT(**kwargs)
    assert_names(str(info.value), parameter, value, bound)
    # the same through a plain mapping, as a config would give it
    with pytest.raises(SamplerConfigError) as info:
        SamplerSpec(edt=dict(kwargs))
    assert_names(str(info.value), parameter, value, bound)


BAD_CALIBRATED = [
    ({"a": 0.0, "b": 0.0}, "calibrated_epsilon.b", "0.0", "B > 0"),
    ({"a": 0.0, "b": -1.2}, "calibrated_epsilon.b", "-1.2", "B > 0"),
    ({"a": 0.0, "b": NAN}, "calibrated_epsilon.b", "nan", "B > 0"),
    ({"a": 0.0, "b": INF}, "calibrated_epsilon.b", "inf", "B > 0"),
    ({"a": INF, "b": 1.0}, "calibrated_epsilon.a", "inf", "finite"),
    ({"a": NAN, "b": 1.0}, "calibrated_epsilon.a", "nan", "finite"),
    ({"a": 0.0, "b": 1.0, "c": 1.5}, "calibrated_epsilon.c", "1.5", "0 <= c <= 1"),
    ({"a": 0.0, "b": 1.0, "c": -0.1}, "calibrated_epsilon.c", "-0.1", "0 <= c <= 1"),
    ({"a": False, "b": 1.0}, "calibrated_epsilon.a", "False", "finite"),
]


@pytest.mark.parametrize("kwargs,parameter,value,bound", BAD_CALIBRATED, ids=[f"{b[1]}={b[2]}" for b in BAD_CALIBRATED])
def test_bad_calibrated_epsilon(kwargs, parameter, value, bound):
    with pytest.raises(SamplerConfigError) as info:
        CalibratedEpsilon(**kwargs)
    message = str(info.value)
    assert parameter in message and value in message and bound in message, message
    with pytest.raises(SamplerConfigError):
        SamplerSpec(calibrated_epsilon=dict(kwargs))


def test_config_error_is_a_value_error():
    assert issubclass(SamplerConfigError, ValueError)


# ---------------------------------------------------------------- from_mapping
def test_unknown_key_in_mapping():
    with pytest.raises(SamplerConfigError) as info:
        SamplerSpec.from_mapping({"top_p": 0.9, "top_q": 0.9})
    message = str(info.value)
    assert "top_q" in message
    assert "top_p" in message and "min_p" in message  # lists the valid names


def test_unknown_nested_key_in_mapping():
    with pytest.raises(SamplerConfigError) as info:
        SamplerSpec.from_mapping({"edt": {"n": 0.8, "temp": 1.0}})
    assert "temp" in str(info.value) and "edt" in str(info.value)
    with pytest.raises(SamplerConfigError) as info:
        SamplerSpec.from_mapping({"calibrated_epsilon": {"a": 0.1, "b": 1.0, "C": 0.05}})
    assert "'C'" in str(info.value)


def test_bad_value_through_mapping():
    with pytest.raises(SamplerConfigError) as info:
        SamplerSpec.from_mapping({"name": "min_p", "min_p": 1.5})
    assert_names(str(info.value), "min_p", "1.5", "<= 1")
    with pytest.raises(SamplerConfigError) as info:
        SamplerSpec.from_mapping({"edt": "hot"})
    assert "edt" in str(info.value) and "'hot'" in str(info.value)


def test_mapping_builds_the_same_spec():
    spec = SamplerSpec.from_mapping(
        {
            "name": "kitchen_sink",
            "temperature": 0.7,
            "top_k": 40,
            "top_p": None,
            "min_p": 0.05,
            "calibrated_topk": [1, 1, 2, 2, 3, 3, 4, 4, 5, 5],
            "calibrated_epsilon": {"a": 0.3, "b": 1.2, "c": 0.05},
        }
    )
    assert spec == SamplerSpec(
        temperature=0.7,
        top_k=40,
        min_p=0.05,
        calibrated_topk=(1, 1, 2, 2, 3, 3, 4, 4, 5, 5),
        calibrated_epsilon=CalibratedEpsilon(a=0.3, b=1.2, c=0.05),
    )
    assert spec.top_p is None
    assert SamplerSpec.from_mapping({"edt": {"n": 0.5}}).edt == EDT(n=0.5)


# ------------------------------------------------------------ valid edge values
def test_top_k_zero_means_off():
    spec = SamplerSpec(top_k=0)
    assert spec.top_k is None
    z = torch.randn(2, 50)
    assert torch.equal(process_logits(z, spec), z)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_p": 0},
        {"min_p": 0.0},
        {"min_p": 1},
        {"top_p": 1},
        {"top_p": 1.0},
        {"top_p": 1e-9},
        {"epsilon": 0},
        {"eta": 0},
        {"epsilon": 0.999},
        {"greedy_threshold": 0},
        {"greedy_threshold": 1},
        {"temperature": 0},
        {"temperature": 1e-3},
        {"temperature": 100},
        {"top_k": 1},
        {"top_k": 10**6},
        {"top_k": 3.0},
        {"confidence_bin": 1},
        {"confidence_bin": 10},
        {"confidence_bin": 1, "bins": 1},
        {"calibrated_topk": [1] * 10},
        {"calibrated_topk": (7,), "bins": 1},
        {"calibrated_topk": (5, 4, 3), "bins": 3, "calibrated_topk_order": "high_first"},
        {"edt": EDT(n=1e-6, theta=0.0, t0=1e-6)},
        {"edt": {"n": 5.0}},
        {"edt": EDT(), "temperature": 1},
        {"calibrated_epsilon": CalibratedEpsilon(a=-3.0, b=1e-3, c=0.0)},
        {"calibrated_epsilon": {"a": 2, "b": 1, "c": 1}},
    ],
)
def test_valid_edge_values_are_accepted(kwargs):
    spec = SamplerSpec(**kwargs)
    z = torch.randn(3, 20)
    out = process_logits(z, spec)
    assert ((out > -math.inf).sum(-1) >= 1).all()


def test_valid_values_are_normalised():
    assert SamplerSpec(top_k=3.0).top_k == 3 and isinstance(SamplerSpec(top_k=3.0).top_k, int)
    assert isinstance(SamplerSpec(min_p=0).min_p, float)
    assert SamplerSpec(calibrated_topk=[1] * 10).calibrated_topk == (1,) * 10
    assert SamplerSpec(edt={"n": 0.5}).edt == EDT(n=0.5, theta=1.0, t0=1.0)


def test_spec_is_immutable():
    spec = SamplerSpec(top_k=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.top_k = 4  # type: ignore[misc]
