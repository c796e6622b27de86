"""The library's refusals and number handling (issue 14): numpy scalars and 0-d tensors count as
numbers; non-float logits, wrong containers and None are refused with a clear message; finite
logits of any magnitude keep their argmax at any temperature; draw refuses rows it cannot sample."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sss.samplers import SamplerConfigError, SamplerSpec, process_logits
from sss.samplers.draw import draw


@pytest.mark.parametrize("value", [np.float32(0.1), np.float64(0.1), np.array(0.1), torch.tensor(0.1)])
def test_numpy_scalars_and_0d_tensors_are_numbers(value):
    assert SamplerSpec(min_p=value).min_p == pytest.approx(0.1)
    assert SamplerSpec(top_k=np.int64(5)).top_k == 5 and SamplerSpec(top_k=torch.tensor(5)).top_k == 5
    assert SamplerSpec(greedy=np.bool_(True)).greedy is True


@pytest.mark.parametrize("value", [np.array([0.1, 0.2]), torch.tensor([0.1]), np.bool_(True), "0.1"])
def test_arrays_and_other_kinds_are_refused_by_name(value):
    with pytest.raises(SamplerConfigError, match="sampler.min_p"):
        SamplerSpec(min_p=value)


@pytest.mark.parametrize(
    "logits, words",
    [
        (np.zeros((1, 3), dtype=np.float32), "ndarray"),
        ([[0.0, 1.0]], "list"),
        (None, "NoneType"),
        (torch.zeros(1, 3, dtype=torch.int64), "torch.int64"),
        (torch.zeros(1, 3, dtype=torch.bool), "torch.bool"),
    ],
)
def test_non_float_logits_are_refused(logits, words):
    with pytest.raises(TypeError, match="floating-point torch.Tensor") as info:
        process_logits(logits, SamplerSpec())
    assert words in str(info.value)


@pytest.mark.parametrize("spec", [None, {"min_p": 0.1}, "min_p", 0.1, [None], [{"min_p": 0.1}]])
def test_wrong_spec_containers_are_refused(spec):
    with pytest.raises(TypeError, match="SamplerSpec"):
        process_logits(torch.zeros(1, 4), spec)


@pytest.mark.parametrize("big", [3e38, 1e38, -3e38, 3.4e38])
@pytest.mark.parametrize("temperature", [0.5, 0.1, 1e-3, 1.0, 7.0])
def test_huge_finite_logits_keep_their_argmax(big, temperature):
    z = torch.tensor([[big, big / 3, 0.0, -3e38], [0.0, 1.0, 2.0, 3.0]])
    out = process_logits(z, SamplerSpec(temperature=temperature, min_p=0.01))
    assert torch.isfinite(out.amax(dim=-1)).all()
    assert out.argmax(dim=-1).tolist() == z.argmax(dim=-1).tolist()
    # the untouched row is divided as before, exactly
    assert torch.equal(process_logits(z[1:], SamplerSpec(temperature=temperature)), z[1:] / temperature)
    probs = torch.softmax(out, dim=-1)
    assert not probs.isnan().any()


@pytest.mark.parametrize("row", [[float("-inf")] * 3, [float("nan"), 0.0, 1.0], [0.0, float("inf"), 1.0]])
def test_draw_refuses_rows_without_a_finite_token(row):
    logits = torch.tensor([[0.0, 1.0, 2.0], row])
    with pytest.raises(ValueError, match=r"row\(s\) \[1\]"):
        draw(logits, torch.tensor([1, 2]), 0)
    assert draw(logits[:1], torch.tensor([1]), 0).shape == (1,)


def test_nested_nulls_are_not_defaults():
    with pytest.raises(SamplerConfigError, match="sampler.edt.n"):
        SamplerSpec.from_mapping({"edt": {"n": None, "theta": 1.0, "t0": 1.0}})
    with pytest.raises(SamplerConfigError, match="sampler.calibrated_epsilon.a"):
        SamplerSpec.from_mapping({"calibrated_epsilon": {"a": None, "b": 0.8}})
    with pytest.raises(SamplerConfigError, match="calibrated_epsilon.a .*no default"):
        SamplerSpec.from_mapping({"calibrated_epsilon": {"b": 0.8}})
    assert SamplerSpec.from_mapping({"edt": {"theta": 2.0}}).edt.n == 0.8  # left out: the default
