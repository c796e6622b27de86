"""Which engine traces: `calibration.engine` = hf (default), vllm or torchtune. All three see
the same token sequences (tokenized once, with the HF tokenizer of the model folder) and hold
the model frozen."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # checking a config imports this module: no torch at import time
    from .data import Sequence
    from .stats import StepColumns

TRACE_ENGINES = ("hf", "vllm", "torchtune")


def load_engine(engine: str, path: str, model_cfg: dict[str, Any], options: dict[str, Any]):
    dtype, device = model_cfg["dtype"], model_cfg.get("device", "cpu")
    if engine == "hf":
        from .trace_hf import load_hf

        return load_hf(path, dtype, device, model_cfg.get("trust_remote_code", False))
    if engine == "torchtune":
        from .trace_torchtune import load_torchtune

        return load_torchtune(path, dtype, device, max_seq_len=options["max_length"])
    if engine == "vllm":
        from .trace_vllm import load_vllm

        settings = {
            k: model_cfg[k]
            for k in ("gpu_memory_utilization", "enforce_eager", "kv_cache_memory_bytes", "trust_remote_code")
            if k in model_cfg
        }
        # + 1: vLLM generates one token after the longest sequence
        return load_vllm(path, dtype, options["top_k"], max_model_len=options["max_length"] + 1, **settings)
    raise ValueError(f"calibration.engine = {engine!r}: expected one of {TRACE_ENGINES}")


def trace(
    engine: str, loaded, sequences: list[Sequence], options: dict[str, Any], show_progress: bool = True
) -> StepColumns:
    if engine == "hf":
        from .trace_hf import trace_hf

        return trace_hf(sequences, loaded, options["top_k"], options["batch_size"], show_progress)
    if engine == "torchtune":
        from .trace_torchtune import trace_torchtune

        return trace_torchtune(sequences, loaded, options["top_k"], options["batch_size"], show_progress)
    from .trace_vllm import trace_vllm

    return trace_vllm(sequences, loaded, options["top_k"], show_progress)
