"""sss's own HF decode loop on the real embedded model (float32): the same texts as transformers'
generate, traces equal to a direct forward pass, batch-independent draws, stops, context limits,
and the prefix/prefill sharing it promises."""

from __future__ import annotations

import pytest
import torch

from sss.engines.base import Request
from sss.engines.hf import HFEngine
from sss.samplers import SamplerSpec

pytestmark = pytest.mark.slow

PREFIX = (
    "Question: Tom has 2 apples and gets 3 more. How many apples?\nAnswer: 2 + 3 = 5. The answer is 5.\n\n"
    "Question: A box holds 4 pens. How many pens are in 2 boxes?\nAnswer: 4 * 2 = 8. The answer is 8.\n\n"
)
QUESTIONS = [
    "Question: Sam reads 6 pages a day. How many pages in 3 days?\nAnswer:",
    "Question: What is 9 minus 4?\nAnswer:",
    "Question: A car has 4 wheels. How many wheels do 5 cars have, and how many would 7 cars have?\nAnswer:",
]


@pytest.fixture(scope="module")
def engine(smollm2_path):
    return HFEngine(smollm2_path, dtype="float32")


@pytest.fixture(scope="module")
def reference(smollm2_path):
    """transformers' own generate() and attention (the old path): the independent reference."""
    return HFEngine(smollm2_path, dtype="float32", loop="generate")


def requests(spec, repeats=2, max_new_tokens=40, stop=("Question:",), questions=QUESTIONS):
    return [
        Request(
            prompt=PREFIX + q,
            spec=spec,
            seed=1000 * i + r,
            max_new_tokens=max_new_tokens,
            stop=tuple(stop),
            group="task",
        )
        for i, q in enumerate(questions)
        for r in range(repeats)
    ]


@pytest.mark.parametrize("spec", [SamplerSpec(min_p=0.1), SamplerSpec(top_k=5, temperature=0.8)])
def test_same_texts_as_transformers_generate_with_the_same_seeds(engine, reference, spec):
    batch = requests(spec, max_new_tokens=24)
    ours = engine.generate(batch, progress=False)
    theirs = reference.generate(batch, progress=False)
    assert [g.text for g in ours] == [g.text for g in theirs]
    assert all(g.stopped in ("stop", "length") for g in ours)


def test_a_sample_does_not_depend_on_its_batch_or_the_batch_size(smollm2_path, engine):
    batch = requests(SamplerSpec(temperature=1.0), repeats=3)
    together = engine.generate(batch, progress=False)
    one_row = HFEngine(smollm2_path, dtype="float32", max_rows=1).generate(batch, progress=False)
    alone = [engine.generate([r], progress=False)[0] for r in batch[::2]]
    assert [g.text for g in together] == [g.text for g in one_row]
    assert [g.text for g in together[::2]] == [g.text for g in alone]
    assert len({g.text for g in together}) > 3  # repeats (different seeds) differ


def test_trace_equals_a_direct_forward_pass(engine, reference):
    batch = requests(SamplerSpec(temperature=1.0), repeats=1, max_new_tokens=30)
    gens = engine.generate(batch, trace_top_k=5, progress=False)
    ranks_equal = total = 0
    for request, gen in zip(batch, gens):
        trace = gen.trace
        assert len(trace) == gen.new_tokens
        prompt = engine.encode(request.prompt)
        ids = torch.tensor([prompt + trace.token_ids.tolist()])
        with torch.inference_mode():
            logits = reference.model(ids).logits[0, len(prompt) - 1 : -1].float()
        logp = torch.log_softmax(logits, dim=-1)
        chosen = torch.as_tensor(trace.token_ids)
        torch.testing.assert_close(
            torch.as_tensor(trace.logprob), logp.gather(1, chosen[:, None])[:, 0], atol=2e-4, rtol=1e-4
        )
        torch.testing.assert_close(torch.as_tensor(trace.p_max), logp.max(-1).values.exp(), atol=1e-4, rtol=1e-4)
        entropy = -(logp.exp() * logp).nan_to_num().sum(-1)
        torch.testing.assert_close(torch.as_tensor(trace.entropy), entropy, atol=1e-3, rtol=1e-3)
        rank = (logits > logits.gather(1, chosen[:, None])).sum(-1) + 1
        ranks_equal += int((torch.as_tensor(trace.rank) == rank).sum())
        total += len(trace)
        assert torch.equal(torch.as_tensor(trace.top_ids[:, 0]), logits.argmax(-1))
        assert (trace.kept == 49152).all() or (trace.kept >= 1).all()
        # text_end places every token in the completion text
        assert trace.text_end[-1] >= len(gen.text) and list(trace.text_end) == sorted(trace.text_end)
    assert ranks_equal / total >= 0.99


def test_greedy_traces_rank_one_and_keep_one(engine):
    gens = engine.generate(requests(SamplerSpec(greedy=True), repeats=1), trace_top_k=0, progress=False)
    for g in gens:
        assert (g.trace.rank == 1).all() and (g.trace.kept == 1).all() and g.trace.top_ids is None


def test_stop_strings_eos_and_rows_of_very_different_lengths(engine, reference):
    chat = engine.apply_chat_template([{"role": "user", "content": "Say hi."}])
    batch = [
        Request(chat, SamplerSpec(greedy=True), 1, 200),  # ends at EOS
        Request(PREFIX + QUESTIONS[0], SamplerSpec(greedy=True), 2, 200, ("\n",)),  # a stop string
        Request(PREFIX + QUESTIONS[1], SamplerSpec(temperature=1.0), 3, 3),  # 3 tokens
        Request("Count to fifty: 1, 2, 3,", SamplerSpec(greedy=True), 4, 60),
    ]  # runs to its limit
    gens = engine.generate(batch, trace_top_k=0, progress=False)
    alone = [engine.generate([r], progress=False)[0] for r in batch]
    assert [g.text for g in gens] == [g.text for g in alone]
    eos, stop, short, long = gens
    assert eos.stopped == "stop" and eos.trace.token_ids[-1] in engine.eos_ids
    assert stop.stopped == "stop" and "\n" not in stop.text and len(stop.text) > 0
    assert (short.stopped, short.new_tokens) == ("length", 3)
    assert (long.stopped, long.new_tokens) == ("length", 60)
    assert all(len(g.trace) == g.new_tokens for g in gens)
    assert [g.text for g in gens] == [g.text for g in reference.generate(batch, progress=False)]


def test_a_prompt_longer_than_the_context_is_a_clear_error(engine):
    too_long = "one two three " * (engine.context_length // 2)
    with pytest.raises(ValueError, match=r"prompt of \d+ tokens does not fit the model's context of 8192"):
        engine.generate([Request(too_long, SamplerSpec(), 0, 5)], progress=False)


def test_prefix_encoded_once_and_repeats_share_one_prefill(smollm2_path, monkeypatch):
    engine = HFEngine(smollm2_path, dtype="float32")
    calls = {"encode_prefix": [], "prefill": []}
    for name in calls:
        original = getattr(engine, name)

        def spy(*args, _original=original, _name=name):
            calls[_name].append(args)
            return _original(*args)

        monkeypatch.setattr(engine, name, spy)
    engine.generate(requests(SamplerSpec(min_p=0.1), repeats=4, max_new_tokens=8), progress=False)
    (prefix_call,) = calls["encode_prefix"]
    assert len(prefix_call[1]) >= len(engine.encode(PREFIX)) - 1  # the exemplars, encoded once
    assert len(calls["prefill"]) == len(QUESTIONS)  # one prefill per question, not per repeat
    assert all(len(ids) < 40 for _, _, ids in calls["prefill"])  # only each question's own tokens
