"""`model.engine=vllm` in the config: its settings, their checks, what the model class gets.

No vLLM needed: everything here runs before a model would load.
"""

from __future__ import annotations

import importlib.util

import pytest
from hydra import compose, initialize_config_dir

from conftest import ROOT
from sss.config import ENGINE_KEYS, ENGINES, ConfigError, engine_kwargs, validate

CONF = ROOT / "conf"
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))


def compose_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def test_vllm_is_an_engine_and_its_lm_eval_class_is_registered():
    assert "vllm" in ENGINES
    from lm_eval.api.registry import get_model

    from sss.evaluation import vllm_lm  # noqa: F401  (registers without importing vLLM)

    assert get_model("sss-vllm").__name__ == "VLLMSamplerLM"


@pytest.mark.parametrize("model", MODELS)
def test_every_model_config_carries_the_vllm_settings(model, monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())  # as if installed
    model_cfg = validate(compose_cfg(f"model={model}", "model.engine=vllm")).config["model"]
    kwargs = engine_kwargs(model_cfg)
    assert set(kwargs) == set(ENGINE_KEYS["vllm"])
    assert 0 < kwargs["gpu_memory_utilization"] <= 1 and kwargs["tensor_parallel_size"] >= 1
    assert "device" not in kwargs
    # the HF engine still gets exactly what it took before
    hf = engine_kwargs(validate(compose_cfg(f"model={model}", "model.engine=hf")).config["model"])
    assert set(hf) == {"batch_size", "dtype", "device", "trust_remote_code"}


def test_vllm_settings_from_the_command_line_reach_the_model_class(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())
    cfg = validate(compose_cfg("model=qwen1.5b", "model.engine=vllm", "model.tensor_parallel_size=2",
                               "model.max_model_len=4096", "model.gpu_memory_utilization=0.8",
                               "model.enforce_eager=true", "model.kv_cache_memory_bytes=1073741824"))
    kwargs = engine_kwargs(cfg.config["model"])
    assert (kwargs["tensor_parallel_size"], kwargs["max_model_len"], kwargs["gpu_memory_utilization"],
            kwargs["enforce_eager"], kwargs["kv_cache_memory_bytes"]) == (2, 4096, 0.8, True, 1 << 30)


@pytest.mark.parametrize("override, key", [
    ("model.gpu_memory_utilization=0", "model.gpu_memory_utilization"),
    ("model.gpu_memory_utilization=1.5", "model.gpu_memory_utilization"),
    ("model.tensor_parallel_size=0", "model.tensor_parallel_size"),
    ("model.max_model_len=0", "model.max_model_len"),
    ("model.enforce_eager=sometimes", "model.enforce_eager"),
    ("model.kv_cache_memory_bytes=-1", "model.kv_cache_memory_bytes"),
])
def test_bad_vllm_settings_are_config_errors(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(compose_cfg("model.engine=vllm", override))


def test_engine_vllm_without_vllm_installed_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "vllm" else real(name, *a))
    with pytest.raises(ConfigError, match=r"model\.engine = 'vllm'.*sss\[vllm\]"):
        validate(compose_cfg("model.engine=vllm"))
    validate(compose_cfg())  # the HF engine does not need it
