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

ENGINES = ("hf", "vllm", "dummy")
# Keys that moved from the model config to the engine group, for the message that says where.
MOVED_TO_ENGINE = {"engine", "device", "batch_size", "gpu_memory_utilization", "tensor_parallel_size",
                   "max_model_len", "enforce_eager", "kv_cache_memory_bytes"}
DTYPES = ("float32", "bfloat16", "float16")
JOBS = ("evaluate", "analyze", "calibrate")


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


def _check_engine(engine: dict) -> None:
    """The engine group's settings, each engine its own (conf/engine/<name>.yaml)."""
    name = engine.get("name")
    if name not in ENGINES:
        raise _bad("engine.name", name, f"one of {ENGINES} (choose with engine=<name>)")
    if not isinstance(engine.get("_target_"), str):
        raise _bad("engine._target_", engine.get("_target_"), "the engine class to build")
    section = {"engine": engine}
    if name in ("hf", "dummy"):
        _int(section, "engine.max_rows", 1)
    if name == "hf":
        device = engine.get("device")
        if not isinstance(device, str) or not (device == "cpu" or device.split(":")[0] == "cuda"):
            raise _bad("engine.device", device, "cpu, cuda or cuda:N")
        if device != "cpu":
            _check_cuda(device)
        if engine.get("loop") not in ("sss", "generate"):
            raise _bad("engine.loop", engine.get("loop"), "sss or generate")
        gib = engine.get("kv_cache_gib")
        if isinstance(gib, bool) or not isinstance(gib, (int, float)) or not gib > 0:
            raise _bad("engine.kv_cache_gib", gib, "a positive number of GiB")
        _int(section, "engine.batch_size", 1)
    if name == "dummy":
        _int(section, "engine.vocab_seed", 0)
    if name == "vllm":
        gmu = engine.get("gpu_memory_utilization")
        if isinstance(gmu, bool) or not isinstance(gmu, (int, float)) or not 0 < gmu <= 1:
            raise _bad("engine.gpu_memory_utilization", gmu, "a fraction 0 < x <= 1")
        _int(section, "engine.tensor_parallel_size", 1)
        _int(section, "engine.max_model_len", 1, allow_none=True)
        _int(section, "engine.kv_cache_memory_bytes", 1, allow_none=True)
        if engine.get("enforce_eager") not in (True, False, None):
            raise _bad("engine.enforce_eager", engine.get("enforce_eager"), "true, false or null")
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            raise _bad("engine", "vllm", "an installed engine: vLLM is not installed "
                       "(GPU: pip install 'sss[vllm]'; CPU: bash scripts/setup-venv.sh dev)")


def _check_cuda(device: str) -> None:
    """A CUDA device must exist here, before the model loads onto it."""
    index = device.partition(":")[2]
    if index and not index.isdigit():
        raise _bad("engine.device", device, "cpu, cuda or cuda:N (N a GPU index)")
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise _bad("engine.device", device, "cpu: this machine has no CUDA GPU")
    if index and int(index) >= count:
        raise _bad("engine.device", device, f"cpu or cuda:0 .. cuda:{count - 1} ({count} GPUs here)")


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
    if not isinstance(plain.get("force", False), bool):
        raise _bad("force", plain.get("force"), "true or false")
    check_output_root(plain.get("output_root"))
    if job == "analyze":
        return _validate_analyze(plain)
    if job == "calibrate":
        return _validate_calibrate(plain)

    from sss.samplers import SamplerConfigError, SamplerSpec

    model = plain["model"]
    for key in ("name", "path"):
        if not isinstance(model.get(key), str) or not model[key]:
            raise _bad(f"model.{key}", model.get(key), "a non-empty string")
    moved = sorted(MOVED_TO_ENGINE & set(model))
    if moved:
        raise ConfigError(f"model.{moved[0]} is an engine setting now: choose the engine with "
                          f"engine=<{'|'.join(ENGINES)}> and set engine.<key> (docs/engines.md)")
    if model.get("dtype") not in DTYPES:
        raise _bad("model.dtype", model.get("dtype"), f"one of {DTYPES}")
    if not isinstance(model.get("trust_remote_code"), bool):
        raise _bad("model.trust_remote_code", model.get("trust_remote_code"), "true or false")
    _check_engine(plain.get("engine") or {})
    from sss.tracing import validate_logging

    validate_logging(plain)
    if (plain.get("engine") or {}).get("name") != "dummy":  # the dummy engine reads no weights
        from sss.models.check import check_model_path

        check_model_path(model["path"])

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

    # sampler.calibration=<dir>: the artifact's k list / fit replace the typed-in values
    from sss.calibration.artifact import CalibrationArtifactError
    from sss.calibration.for_samplers import auto_calibration, resolve_calibration

    try:
        if plain["sampler"].get("calibration") == "auto":
            plain["sampler"]["calibration"] = auto_calibration(plain)
        plain["sampler"] = resolve_calibration(plain["sampler"])
    except CalibrationArtifactError as exc:
        raise ConfigError(str(exc)) from exc
    try:
        spec = SamplerSpec.from_mapping(plain["sampler"])
    except SamplerConfigError:
        raise
    except TypeError as exc:
        raise ConfigError(f"sampler: {exc}") from exc
    check_rule_combination(spec)
    return RunSettings(spec=spec, seed=plain["seed"], config=plain)


def _check_model(model: dict) -> None:
    for key in ("name", "path"):
        if not isinstance(model.get(key), str) or not model[key]:
            raise _bad(f"model.{key}", model.get(key), "a non-empty string")
    if model.get("dtype") not in DTYPES:
        raise _bad("model.dtype", model.get("dtype"), f"one of {DTYPES}")


def _validate_calibrate(plain: dict) -> RunSettings:
    """`job=calibrate`: the model's identity and dtype, and every `calibration.` setting."""
    from sss.calibration.options import check_options

    _check_model(plain["model"])
    options = plain.get("calibration")
    if not isinstance(options, dict):
        raise _bad("calibration", options, "the calibration settings (conf/calibration/)")
    check_options(options)
    return RunSettings(spec=None, seed=plain["seed"], config=plain)


def check_output_root(value: Any) -> None:
    """`output_root` must name a folder this user can write: an existing one, or one that can be
    made below the nearest existing folder. Checked before Hydra writes its logs there
    (launch.py) and again on the composed config."""
    import os

    allowed = "a writable folder path (e.g. outputs)"
    if not isinstance(value, str) or not value.strip():
        raise _bad("output_root", value, allowed)
    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():
        raise _bad("output_root", value, f"{allowed}; it is a file")
    existing = path.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise _bad("output_root", value, f"{allowed}; {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise _bad("output_root", value, f"{allowed}; {existing} is not writable by this user")


# Rules that cannot act beside greedy decoding (greedy=true or temperature=0): the argmax is
# the whole kept set, so truncation, re-weighting and a temperature change nothing.
def check_rule_combination(spec: SamplerSpec) -> None:
    """Refuse a sampler where one rule has no effect (docs/samplers.md, "Combinations")."""
    if not spec.is_greedy:
        return
    which = "sampler.greedy = true" if spec.greedy else "sampler.temperature = 0"
    if spec.greedy and spec.temperature not in (0.0, 1.0):
        raise _bad("sampler.temperature", spec.temperature,
                   f"1.0 (or 0) with {which}: greedy decoding takes the argmax, a temperature "
                   "cannot change it")
    idle = sorted(name for name in spec.enabled() if name not in ("greedy", "bins"))
    if idle:
        raise ConfigError(f"sampler.{idle[0]} is not allowed with {which}: greedy decoding keeps "
                          f"only the argmax, so {', '.join(idle)} would have no effect "
                          "(drop the rule, or sample with a temperature > 0)")


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
    scoring = options.get("scoring", "sss")
    if scoring not in ("sss", "paper"):
        raise _bad("analyze.scoring", scoring, "sss or paper (which metric set to show)")
    if not isinstance(options.get("rescore", False), bool):
        raise _bad("analyze.rescore", options.get("rescore"), "true or false")
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
