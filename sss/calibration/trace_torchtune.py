"""Traces with torchtune: the model built by torchtune's own builders from the HF config, its
weights read by torchtune's `FullModelHFCheckpointer`, in eval mode, frozen.

Families: `llama` (the llama3 builder; with Llama-3 RoPE scaling, the llama3_2 builder) and
`qwen2`. A tied output projection (SmolLM2, Llama 3.2 1B/3B, small Qwen2.5) shares the token
embedding through torchtune's `TiedLinear`.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from .batching import batches, progress
from .data import Sequence
from .stats import StepColumns, step_columns

FAMILIES = ("llama", "qwen2")


def _build(config: dict, max_seq_len: int):
    common = dict(
        vocab_size=config["vocab_size"],
        num_layers=config["num_hidden_layers"],
        num_heads=config["num_attention_heads"],
        num_kv_heads=config["num_key_value_heads"],
        embed_dim=config["hidden_size"],
        intermediate_dim=config["intermediate_size"],
        max_seq_len=max_seq_len,
        norm_eps=config["rms_norm_eps"],
    )
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    rope_base = rope.get("rope_theta", config.get("rope_theta", 10000.0))
    tied = bool(config.get("tie_word_embeddings", False))
    family = config.get("model_type")
    if family == "qwen2":
        from torchtune.models.qwen2._component_builders import qwen2

        return qwen2(rope_base=rope_base, tie_word_embeddings=tied, **common), "QWEN2"
    if family != "llama":
        raise ValueError(
            f"calibration.engine = 'torchtune' supports the model families {FAMILIES}; this model is {family!r}"
        )
    if rope.get("rope_type") == "llama3":
        from torchtune.models.llama3_2._component_builders import llama3_2

        model = llama3_2(
            rope_base=rope_base, scale_factor=int(rope.get("factor", 32)), tie_word_embeddings=tied, **common
        )
    else:
        from torchtune.models.llama3._component_builders import llama3
        from torchtune.modules import TiedLinear

        model = llama3(rope_base=rope_base, **common)
        if tied:  # as torchtune's llama3_2 builder does: no module of its own, the embedding's weight
            del model.output
            model.output = TiedLinear(model.tok_embeddings)
    return model, "LLAMA3"


def load_torchtune(path: str, dtype: str, device: str, max_seq_len: int = 4096):
    from torchtune.training import FullModelHFCheckpointer

    folder = Path(path)
    config = json.loads((folder / "config.json").read_text())
    with torch.device("meta"):
        model, model_type = _build(config, max_seq_len)
    files = sorted(p.name for p in folder.glob("*.safetensors")) or sorted(
        p.name for p in folder.glob("pytorch_model*.bin")
    )
    with tempfile.TemporaryDirectory(prefix="sss-torchtune-") as out:
        checkpointer = FullModelHFCheckpointer(
            checkpoint_dir=str(folder), checkpoint_files=files, model_type=model_type, output_dir=out
        )
        state = checkpointer.load_checkpoint()["model"]
    model = model.to_empty(device=device)
    # to_empty left the RoPE caches (buffers, not in the checkpoint) uninitialised
    for module in model.modules():
        if hasattr(module, "rope_init"):
            module.rope_init()
    if config.get("tie_word_embeddings"):
        state.pop("output.weight", None)  # the tied projection is the embedding itself
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(
            f"the torchtune checkpoint of {path} does not fit the built model: {str(exc).splitlines()[0]}"
        ) from exc
    model.to(getattr(torch, dtype)).eval().requires_grad_(False)  # frozen
    return model


@torch.inference_mode()
def trace_torchtune(
    sequences: list[Sequence], model, top_k: int, batch_size: int, show_progress: bool = True
) -> StepColumns:
    device = next(model.parameters()).device
    parts = []
    bar = progress(sum(s.n_answer for s in sequences), "trace (torchtune)") if show_progress else None
    for batch in batches(sequences, batch_size):
        width = max(len(s.input_ids) for s in batch)
        # right padding: the default causal mask keeps pads (at the end) out of every real position
        ids = torch.zeros(len(batch), width, dtype=torch.long)
        for row, seq in enumerate(batch):
            ids[row, : len(seq.input_ids)] = torch.tensor(seq.input_ids)
        logits = model(ids.to(device))
        for row, seq in enumerate(batch):
            start, end = seq.answer_start, len(seq.input_ids)
            gold = torch.tensor(seq.input_ids[start:end])
            parts.append(step_columns(logits[row, start - 1 : end - 1], gold, top_k, seq.doc_id))
        if bar is not None:
            bar.update(sum(s.n_answer for s in batch))
    if bar is not None:
        bar.close()
    return StepColumns.concat(parts)
