"""The HF engine on the real embedded model: raw logits in, rules obeyed at every token, seeds."""

from __future__ import annotations

import pytest
import torch
from transformers import LogitsProcessor

from sss.engines.base import Request
from sss.engines.hf import HFEngine, SamplerLogitsProcessor, SeededDraw, neutral_generation_config
from sss.samplers import SamplerSpec

PROMPTS = [
    "Question: Ava has 3 apples and buys 4 more. How many apples does she have?\nAnswer:",
    "Question: What is 6 times 7?\nAnswer:",
    "The capital of France is",
]


@pytest.fixture(scope="module")
def gen(smollm2_path):
    # transformers' generate() path: these tests drive model.generate with the public processor
    return HFEngine(smollm2_path, dtype="float32", loop="generate")


def requests(prompts, spec, seeds, max_new_tokens, stop=()):
    return [
        Request(prompt=p, spec=spec, seed=s, max_new_tokens=max_new_tokens, stop=tuple(stop))
        for p, s in zip(prompts, seeds)
    ]


class Recorder(LogitsProcessor):
    """Keeps a copy of the scores it is handed and passes them on unchanged."""

    def __init__(self):
        self.scores = []

    def __call__(self, input_ids, scores):
        self.scores.append(scores.detach().clone())
        return scores


def _run(gen, spec, seeds, max_new_tokens=12):
    enc = gen.tokenizer(PROMPTS, return_tensors="pt", padding=True, add_special_tokens=False)
    width = enc["input_ids"].shape[1]
    recorder = Recorder()
    out = gen.model.generate(
        **enc,
        do_sample=False,
        max_new_tokens=max_new_tokens,
        logits_processor=[recorder, SamplerLogitsProcessor(spec), SeededDraw(seeds, width)],
    )
    return enc, recorder.scores, out[:, width:]


def test_processor_sees_the_models_raw_logits_even_with_a_penalty_in_the_checkpoint(gen):
    # A checkpoint default like Qwen's repetition_penalty must not reach generate().
    gen.model.generation_config.repetition_penalty = 1.3
    gen.model.generation_config = neutral_generation_config(gen.model)
    enc, scores, _ = _run(gen, SamplerSpec(), seeds=[1, 2, 3], max_new_tokens=1)
    with torch.inference_mode():
        raw = gen.model(**enc).logits[:, -1, :]
    torch.testing.assert_close(scores[0], raw, rtol=1e-4, atol=1e-4)


def test_without_neutral_config_the_penalty_would_leak(gen):
    # the check above can fail: a penalty in the generation config changes the scores
    enc = gen.tokenizer(PROMPTS, return_tensors="pt", padding=True, add_special_tokens=False)
    recorder = Recorder()
    gen.model.generate(**enc, do_sample=False, max_new_tokens=1, repetition_penalty=1.3, logits_processor=[recorder])
    with torch.inference_mode():
        raw = gen.model(**enc).logits[:, -1, :]
    assert not torch.allclose(recorder.scores[0], raw, atol=1e-3)


@pytest.mark.parametrize(
    "spec, check",
    [
        (SamplerSpec(min_p=0.3), lambda p, tok: p[tok] >= 0.3 * p.max() - 1e-7),
        (SamplerSpec(top_k=3), lambda p, tok: (p > p[tok]).sum() < 3),
        (SamplerSpec(temperature=0), lambda p, tok: p[tok] == p.max()),
        (SamplerSpec(greedy_threshold=1.0), lambda p, tok: p[tok] == p.max()),
        (SamplerSpec(epsilon=0.05), lambda p, tok: p[tok] >= 0.05 or p[tok] == p.max()),
    ],
)
def test_every_generated_token_obeys_the_rule(gen, spec, check):
    _, scores, new = _run(gen, spec, seeds=[11, 12, 13], max_new_tokens=16)
    eos = gen.model.generation_config.eos_token_id
    checked = 0
    for step, step_scores in enumerate(scores):
        probs = torch.softmax(step_scores.double(), dim=-1)
        for row in range(len(PROMPTS)):
            tok = int(new[row, step])
            if step > 0 and int(new[row, step - 1]) == eos:
                continue  # finished rows are padded
            assert check(probs[row], tok), (spec, step, row)
            checked += 1
    assert checked >= 20


def test_unrestricted_sampling_picks_tokens_outside_the_top_ones(gen):
    _, scores, new = _run(gen, SamplerSpec(temperature=1.5), seeds=[5, 6, 7], max_new_tokens=24)
    ranks = [
        int((step[row] > step[row, new[row, i]]).sum()) for i, step in enumerate(scores) for row in range(len(PROMPTS))
    ]
    assert max(ranks) >= 3  # not secretly truncated


def test_greedy_matches_hf_greedy(gen):
    enc = gen.tokenizer(PROMPTS, return_tensors="pt", padding=True, add_special_tokens=False)
    width = enc["input_ids"].shape[1]
    plain = gen.model.generate(**enc, do_sample=False, max_new_tokens=16)[:, width:]
    ours = _run(gen, SamplerSpec(greedy=True), seeds=[1, 2, 3], max_new_tokens=16)[2]
    assert torch.equal(plain, ours)


def test_generate_is_reproducible_and_seeds_matter(gen):
    spec = SamplerSpec(temperature=1.2)
    a = gen.generate(requests(PROMPTS, spec, [1, 2, 3], 20), progress=False)
    b = gen.generate(requests(PROMPTS, spec, [1, 2, 3], 20), progress=False)
    c = gen.generate(requests(PROMPTS, spec, [4, 5, 6], 20), progress=False)
    assert [g.text for g in a] == [g.text for g in b]
    assert [g.text for g in a] != [g.text for g in c]


def test_stop_strings_cut_the_text(gen):
    out = gen.generate(requests(PROMPTS[:1], SamplerSpec(greedy=True), [0], 60, stop=["\n"]), progress=False)
    assert "\n" not in out[0].text and out[0].stopped == "stop"
