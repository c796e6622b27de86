"""The engine config group: each engine's settings, their checks, what its class is built with.

No model is loaded: everything here runs before one would (the dummy engine has no weights).
"""

from __future__ import annotations

import importlib.util

import pytest
from hydra.utils import instantiate

from conftest import ROOT, assert_refused, launch
from sss.config import ENGINES, ConfigError, validate
from sss.schema import compose as compose_config

CONF = ROOT / "conf"
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))


def compose_cfg(*overrides: str):
    """The config as launch.py composes it: a value of the wrong type is a ConfigError."""
    return compose_config(overrides, CONF)


def test_every_engine_has_a_config_named_after_it():
    assert sorted(p.stem for p in (CONF / "engine").glob("*.yaml")) == sorted(ENGINES)
    for name in ENGINES:
        assert compose_cfg(f"engine={name}").engine.name == name


@pytest.mark.parametrize("model", MODELS)
def test_model_configs_hold_no_engine_settings_and_name_a_default_engine(model):
    cfg = compose_cfg(f"model={model}")
    assert set(cfg.model) == {"name", "path", "dtype", "trust_remote_code"}
    # gpt-oss-20b needs vLLM; the others default to HF; the command line always wins
    assert cfg.engine.name == ("vllm" if model == "gpt-oss-20b" else "hf")
    assert compose_cfg(f"model={model}", "engine=dummy").engine.name == "dummy"


def test_the_engine_is_built_by_instantiate_from_its_config():
    cfg = validate(compose_cfg("engine=dummy", "engine.vocab_seed=3", "engine.max_rows=5")).config
    engine = instantiate(cfg["engine"], path="unused", dtype="float32", trust_remote_code=False)
    assert type(engine).__name__ == "DummyEngine" and (engine.vocab_seed, engine.max_rows) == (3, 5)


def test_vllm_settings_from_the_command_line_reach_the_engine_config(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())  # as if installed
    monkeypatch.setattr("sss.models.check.check_hub_id", lambda value: None)  # as if cached
    cfg = validate(
        compose_cfg(
            "model=qwen1.5b",
            "engine=vllm",
            "engine.tensor_parallel_size=2",
            "engine.max_model_len=4096",
            "engine.gpu_memory_utilization=0.8",
            "engine.enforce_eager=true",
            "engine.kv_cache_memory_bytes=1073741824",
        )
    )
    e = cfg.config["engine"]
    assert (
        e["tensor_parallel_size"],
        e["max_model_len"],
        e["gpu_memory_utilization"],
        e["enforce_eager"],
        e["kv_cache_memory_bytes"],
    ) == (2, 4096, 0.8, True, 1 << 30)


@pytest.mark.parametrize(
    "engine, override, key",
    [
        ("vllm", "engine.gpu_memory_utilization=0", "engine.gpu_memory_utilization"),
        ("vllm", "engine.gpu_memory_utilization=1.5", "engine.gpu_memory_utilization"),
        ("vllm", "engine.tensor_parallel_size=0", "engine.tensor_parallel_size"),
        ("vllm", "engine.max_model_len=0", "engine.max_model_len"),
        ("vllm", "engine.enforce_eager=sometimes", "engine.enforce_eager"),
        ("vllm", "engine.kv_cache_memory_bytes=-1", "engine.kv_cache_memory_bytes"),
        ("hf", "engine.max_rows=0", "engine.max_rows"),
        ("hf", "engine.kv_cache_gib=0", "engine.kv_cache_gib"),
        ("hf", "engine.device=tpu9", "engine.device"),
        ("hf", "engine.loop=fast", "engine.loop"),
        ("hf", "engine.batch_size=0", "engine.batch_size"),
        ("dummy", "engine.vocab_seed=-1", "engine.vocab_seed"),
    ],
)
def test_bad_engine_settings_are_config_errors(engine, override, key, monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(compose_cfg(f"engine={engine}", override))


def test_engine_vllm_without_vllm_installed_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a))
    with pytest.raises(ConfigError, match=r"engine = 'vllm'.*sss\[vllm\]"):
        validate(compose_cfg("engine=vllm"))
    validate(compose_cfg())  # the HF engine does not need it


@pytest.mark.parametrize(
    "override, hint",
    [
        ("model.engine=vllm", "use engine=vllm"),
        ("model.batch_size=8", "use engine.batch_size=8"),
        ("model.device=cuda", "use engine.device=cuda"),
        ("model.tensor_parallel_size=2", "use engine.tensor_parallel_size=2"),
    ],
)
def test_the_old_model_engine_keys_are_refused_with_their_new_place(override, hint):
    assert_refused(launch(override, "engine=dummy"), override.split("=")[0], hint)
