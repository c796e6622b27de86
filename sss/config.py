"""Checks on the composed Hydra config, run before anything heavy is imported or loaded.

Each error names the config key, the value and what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sss.samplers import SamplerConfigError, SamplerSpec

ENGINES = ("hf",)
DTYPES = ("float32", "bfloat16", "float16")
JOBS = ("evaluate",)


class ConfigError(ValueError):
    """A config value is missing, of the wrong kind or out of range."""


@dataclass(frozen=True)
class RunSettings:
    """The validated pieces of a run's config."""

    spec: SamplerSpec
    seed: int
    config: dict[str, Any]  # the resolved config as plain data


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

    model = plain["model"]
    for key in ("name", "path"):
        if not isinstance(model.get(key), str) or not model[key]:
            raise _bad(f"model.{key}", model.get(key), "a non-empty string")
    if model.get("engine") not in ENGINES:
        raise _bad("model.engine", model.get("engine"), f"one of {ENGINES}")
    if model.get("dtype") not in DTYPES:
        raise _bad("model.dtype", model.get("dtype"), f"one of {DTYPES}")
    _int(plain, "model.batch_size", 1)

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
    data_files = task.get("data_files")
    if data_files is not None and not Path(str(data_files)).expanduser().is_file():
        raise _bad("task.data_files", data_files, "an existing local file")

    from sss.evaluation.tasks import TASKS

    if task["name"] not in TASKS:
        raise _bad("task.name", task["name"], f"one of {sorted(TASKS)}")

    try:
        spec = SamplerSpec.from_mapping(plain["sampler"])
    except SamplerConfigError:
        raise
    except TypeError as exc:
        raise ConfigError(f"sampler: {exc}") from exc
    return RunSettings(spec=spec, seed=plain["seed"], config=plain)
