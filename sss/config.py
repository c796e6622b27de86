"""Checks on the composed Hydra config, run before anything heavy is imported or loaded.

Each error names the config key, the value and what is allowed.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

if TYPE_CHECKING:  # sss.samplers pulls in torch: imported where needed, so `job=analyze` never does
    from sss.samplers import SamplerSpec

ENGINES = ("hf", "vllm")
# The model-config keys each engine's lm-eval class (`sss-<engine>`) takes, besides the
# model path, sampler and seed. vLLM runs on the platform its build targets, so `device`
# is the HF engine's alone.
ENGINE_KEYS = {
    "hf": ("batch_size", "dtype", "device", "trust_remote_code"),
    "vllm": ("batch_size", "dtype", "trust_remote_code", "gpu_memory_utilization",
             "tensor_parallel_size", "max_model_len", "enforce_eager", "kv_cache_memory_bytes"),
}
# vLLM settings a model config may leave out, with vLLM's own defaults.
VLLM_DEFAULTS = {"gpu_memory_utilization": 0.9, "tensor_parallel_size": 1, "max_model_len": None,
                 "enforce_eager": False, "kv_cache_memory_bytes": None}
DTYPES = ("float32", "bfloat16", "float16")
JOBS = ("evaluate", "analyze")


class ConfigError(ValueError):
    """A config value is missing, of the wrong kind or out of range."""


@dataclass(frozen=True)
class RunSettings:
    """The validated pieces of a run's config."""

    spec: SamplerSpec | None  # None for jobs that run no sampler (analyze)
    seed: int
    config: dict[str, Any]  # the resolved config as plain data


def is_config_error(exc: BaseException) -> bool:
    """A bad config value: ConfigError, or the sampler rules' SamplerConfigError (looked up only
    if sss.samplers was imported: nothing else can have raised it)."""
    spec = sys.modules.get("sss.samplers.spec")
    return isinstance(exc, ConfigError) or (
        spec is not None and isinstance(exc, spec.SamplerConfigError))


def _bad(key: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"{key} = {value!r} is not allowed: expected {allowed}")


def _int(cfg: dict, key: str, low: int, allow_none: bool = False) -> None:
    section, name = key.split(".") if "." in key else (None, key)
    node = cfg[section] if section else cfg
    value = node.get(name)
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _bad(key, value, f"an integer >= {low}" + (" or null" if allow_none else ""))


def _check_vllm_settings(model: dict) -> None:
    """The vLLM engine keys (checked whatever the engine, so a bad default fails early)."""
    for key, default in VLLM_DEFAULTS.items():
        model.setdefault(key, default)
    gmu = model["gpu_memory_utilization"]
    if isinstance(gmu, bool) or not isinstance(gmu, (int, float)) or not 0 < gmu <= 1:
        raise _bad("model.gpu_memory_utilization", gmu, "a fraction 0 < x <= 1")
    _int({"model": model}, "model.tensor_parallel_size", 1)
    _int({"model": model}, "model.max_model_len", 1, allow_none=True)
    _int({"model": model}, "model.kv_cache_memory_bytes", 1, allow_none=True)
    if not isinstance(model["enforce_eager"], bool):
        raise _bad("model.enforce_eager", model["enforce_eager"], "true or false")
    if model["engine"] == "vllm":
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            raise _bad("model.engine", "vllm", "an installed engine: vLLM is not installed "
                       "(GPU: pip install 'sss[vllm]'; CPU: bash scripts/setup-venv.sh dev)")


def engine_kwargs(model: dict) -> dict[str, Any]:
    """What `sss-<engine>` takes from a validated model config (besides path, sampler, seed)."""
    return {key: model[key] for key in ENGINE_KEYS[model["engine"]]}


def validate(cfg: DictConfig) -> RunSettings:
    """Validate a composed config; raise ConfigError (or SamplerConfigError) on the first problem."""
    try:
        # Hydra's own node (present when composed with return_hydra_config) is not ours to check.
        ours = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])
        plain = OmegaConf.to_container(ours, resolve=True)
    except Exception as exc:  # interpolation errors and missing values
        raise ConfigError(f"the config does not resolve: {exc}") from exc
    assert isinstance(plain, dict)

    job = plain.get("job", {}).get("name")
    if job not in JOBS:
        raise _bad("job.name", job, f"one of {JOBS}")
    _int(plain, "seed", 0)
    if job == "analyze":
        return _validate_analyze(plain)

    from sss.samplers import SamplerConfigError, SamplerSpec

    model = plain["model"]
    for key in ("name", "path"):
        if not isinstance(model.get(key), str) or not model[key]:
            raise _bad(f"model.{key}", model.get(key), "a non-empty string")
    if model.get("engine") not in ENGINES:
        raise _bad("model.engine", model.get("engine"), f"one of {ENGINES}")
    if model.get("dtype") not in DTYPES:
        raise _bad("model.dtype", model.get("dtype"), f"one of {DTYPES}")
    _int(plain, "model.batch_size", 1)
    _check_vllm_settings(model)

    task = plain["task"]
    if not isinstance(task.get("name"), str):
        raise _bad("task.name", task.get("name"), "a task name")
    _int(plain, "task.limit", 1, allow_none=True)
    _int(plain, "task.repeats", 1)
    _int(plain, "task.num_fewshot", 0)
    _int(plain, "task.max_gen_toks", 1)
    stop = task.get("stop")
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        raise _bad("task.stop", stop, "a list of non-empty strings")
    if not isinstance(task.get("chat_template"), bool):
        raise _bad("task.chat_template", task.get("chat_template"), "true or false")

    from sss.evaluation.tasks import TASKS, TaskConfigError

    if task["name"] not in TASKS:
        raise _bad("task.name", task["name"], f"one of {sorted(TASKS)}")
    try:
        TASKS[task["name"]].validate(task)
    except TaskConfigError as exc:
        raise ConfigError(str(exc)) from exc

    try:
        spec = SamplerSpec.from_mapping(plain["sampler"])
    except SamplerConfigError:
        raise
    except TypeError as exc:
        raise ConfigError(f"sampler: {exc}") from exc
    return RunSettings(spec=spec, seed=plain["seed"], config=plain)


def _validate_analyze(plain: dict) -> RunSettings:
    """`job=analyze`: the input must be a directory holding at least one run (a manifest.json)."""
    from sss.runs.discovery import find_runs

    options = plain.get("analyze") or {}
    source = options.get("input")
    if not isinstance(source, str) or not source:
        raise _bad("analyze.input", source, "a run or sweep directory (analyze.input=<dir>)")
    if not Path(source).expanduser().is_dir():
        raise _bad("analyze.input", source, "an existing directory")
    if not find_runs(Path(source).expanduser()):
        raise _bad("analyze.input", source, "a directory with at least one run in it "
                   "(a manifest.json below it, or a sweep.json listing runs)")
    output = options.get("output")
    if output is not None and (not isinstance(output, str) or not output):
        raise _bad("analyze.output", output, "a directory path, or null for <input>/analysis")
    metric = options.get("metric")
    if not isinstance(metric, str) or not metric:
        raise _bad("analyze.metric", metric, "a metric name (e.g. accuracy)")
    # the trace analyses (sss.analysis.traces): thresholds are probabilities
    for key in ("low_conf", "sampled_prob"):
        value = options.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
            raise _bad(f"analyze.{key}", value, "a probability 0 < x <= 1")
    stat = options.get("vote_rank_stat")
    if stat not in ("mean", "max"):
        raise _bad("analyze.vote_rank_stat", stat, "one of ('mean', 'max')")
    cap = options.get("vote_rank_cap")
    if isinstance(cap, bool) or not isinstance(cap, (int, float)) or not cap >= 1:
        raise _bad("analyze.vote_rank_cap", cap, "a number >= 1 (rank 1 is the most probable token)")
    for key in ("vote_need_event", "until_answer"):
        if not isinstance(options.get(key), bool):
            raise _bad(f"analyze.{key}", options.get(key), "true or false")
    return RunSettings(spec=None, seed=plain["seed"], config=plain)
