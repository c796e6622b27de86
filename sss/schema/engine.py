"""The `engine` group (conf/engine/*.yaml): one schema per engine, each with its own keys.

Each engine YAML names its schema first in its defaults list (`/schema/engine/<name>@_here_`),
so `engine.loop` is a key of the HF engine only and a typo such as `engine.max_row` is refused."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from .common import Choice, at_least, bad

ENGINES = ("hf", "vllm", "dummy")


class Loop(Choice):
    sss = "sss"
    generate = "generate"


@dataclass
class EngineSchema:
    # the class hydra.utils.instantiate builds (sss.jobs.evaluate)
    _target_: str = MISSING
    name: str = MISSING

    def check(self) -> None:
        if self.name not in ENGINES:
            raise bad("engine.name", self.name, f"one of {ENGINES} (choose with engine=<name>)")


@dataclass
class HFEngineSchema(EngineSchema):
    device: str = MISSING
    loop: Loop = MISSING
    max_rows: int = MISSING
    kv_cache_gib: float = MISSING
    batch_size: int = MISSING

    def check(self) -> None:
        super().check()
        device = self.device
        if not (device == "cpu" or device.split(":")[0] == "cuda"):
            raise bad("engine.device", device, "cpu, cuda or cuda:N")
        if device != "cpu":
            check_cuda(device)
        at_least("engine.max_rows", self.max_rows, 1)
        if not self.kv_cache_gib > 0:
            raise bad("engine.kv_cache_gib", self.kv_cache_gib, "a positive number of GiB")
        at_least("engine.batch_size", self.batch_size, 1)


@dataclass
class VLLMEngineSchema(EngineSchema):
    gpu_memory_utilization: float = MISSING
    tensor_parallel_size: int = MISSING
    max_model_len: int | None = MISSING
    enforce_eager: bool | None = MISSING
    kv_cache_memory_bytes: int | None = MISSING

    def check(self) -> None:
        super().check()
        if not 0 < self.gpu_memory_utilization <= 1:
            raise bad("engine.gpu_memory_utilization", self.gpu_memory_utilization, "a fraction 0 < x <= 1")
        at_least("engine.tensor_parallel_size", self.tensor_parallel_size, 1)
        at_least("engine.max_model_len", self.max_model_len, 1, allow_none=True)
        at_least("engine.kv_cache_memory_bytes", self.kv_cache_memory_bytes, 1, allow_none=True)
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            raise bad(
                "engine",
                "vllm",
                "an installed engine: vLLM is not installed "
                "(GPU: pip install 'sss[vllm]'; CPU: bash scripts/setup-venv.sh dev)",
            )


@dataclass
class DummyEngineSchema(EngineSchema):
    vocab_seed: int = MISSING
    max_rows: int = MISSING

    def check(self) -> None:
        super().check()
        at_least("engine.max_rows", self.max_rows, 1)
        at_least("engine.vocab_seed", self.vocab_seed, 0)


VARIANTS = {"hf": HFEngineSchema, "vllm": VLLMEngineSchema, "dummy": DummyEngineSchema}


def check_cuda(device: str) -> None:
    """A CUDA device must exist here, before the model loads onto it (torch is imported only
    for a cuda device)."""
    index = device.partition(":")[2]
    if index and not index.isdigit():
        raise bad("engine.device", device, "cpu, cuda or cuda:N (N a GPU index)")
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise bad("engine.device", device, "cpu: this machine has no CUDA GPU")
    if index and int(index) >= count:
        raise bad("engine.device", device, f"cpu or cuda:0 .. cuda:{count - 1} ({count} GPUs here)")
