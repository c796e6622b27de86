"""engine=dummy: the weightless engine drives the real decode loop, rules, draws and traces."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sss.engines.base import Generator, Request
from sss.engines.dummy import VOCAB, DummyEngine
from sss.samplers import SamplerSpec

PROMPTS = [f"Q: shared exemplars, three of them.\n\nQ: what is {i} + {i}?\nA:" for i in range(5)]


def batch(spec, repeats=3, max_new_tokens=24, stop=()):
    return [
        Request(p, spec, seed=100 * i + r, max_new_tokens=max_new_tokens, stop=tuple(stop), group="g")
        for i, p in enumerate(PROMPTS)
        for r in range(repeats)
    ]


def test_it_is_a_generator():
    assert isinstance(DummyEngine(), Generator)


def test_texts_do_not_depend_on_batch_size_or_company_and_seeds_matter():
    requests = batch(SamplerSpec(temperature=1.0))
    full = DummyEngine().generate(requests, progress=False)
    narrow = DummyEngine(max_rows=2).generate(requests, progress=False)
    alone = [DummyEngine().generate([r], progress=False)[0] for r in requests]
    assert [g.text for g in full] == [g.text for g in narrow] == [g.text for g in alone]
    assert len({g.text for g in full}) > len(PROMPTS)  # repeats differ
    other = DummyEngine(vocab_seed=1).generate(requests, progress=False)
    assert [g.text for g in other] != [g.text for g in full]


@pytest.mark.parametrize(
    "spec, check",
    [
        (SamplerSpec(greedy=True), lambda t: (t.rank == 1).all() and (t.kept == 1).all()),
        (SamplerSpec(top_k=3), lambda t: (t.rank <= 3).all() and (t.kept <= 3).all()),
        # min-p at T = 1: p(chosen) >= min_p * p_max on the raw distribution
        (SamplerSpec(min_p=0.2), lambda t: (t.logprob >= np.log(0.2 * t.p_max) - 1e-5).all()),
        (SamplerSpec(temperature=1.0), lambda t: (t.kept == len(VOCAB)).all()),
    ],
)
def test_rules_act_on_every_token_as_the_trace_shows(spec, check):
    for gen in DummyEngine().generate(batch(spec), trace_top_k=3, progress=False):
        t = gen.trace
        assert len(t) == gen.new_tokens and t.top_ids.shape == (gen.new_tokens, 3)
        assert check(t), spec
        assert (t.rank <= t.kept).all() and (t.p_max >= np.exp(t.logprob) - 1e-6).all()
        assert ((t.entropy >= 0) & (t.entropy <= math.log(len(VOCAB)) + 1e-5)).all()


def test_unrestricted_sampling_reaches_low_ranks():
    ranks = np.concatenate(
        [
            g.trace.rank
            for g in DummyEngine().generate(
                batch(SamplerSpec(temperature=1.0), repeats=4), trace_top_k=0, progress=False
            )
        ]
    )
    assert ranks.max() >= 5


def test_stop_strings_cut_the_text_and_budgets_hold():
    gens = DummyEngine().generate(
        batch(SamplerSpec(temperature=1.0), stop=(" so",), max_new_tokens=6), trace_top_k=0, progress=False
    )
    for g in gens:
        assert " so" not in g.text and g.new_tokens <= 6 and len(g.trace) == g.new_tokens
        assert g.stopped == "stop" or g.new_tokens == 6
    assert {g.stopped for g in gens} == {"stop", "length"}
