"""Checks on the composed Hydra config, run before anything heavy is imported or loaded.

Types are the schema's (sss.schema: OmegaConf enforces them when Hydra composes the config);
here each section's ranges are checked, in the order a run needs them, by the section itself
(`<Schema>.check()`) or by the module that owns it (tasks, samplers, calibration).
Each error names the config key, the value and what is allowed.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf, open_dict

from sss.schema import (
    ENGINES,
    ConfigError,
    RootSchema,
    check_composed,
    check_output_root,
)
from sss.schema.common import bad as _bad

if TYPE_CHECKING:  # sss.samplers pulls in torch: imported where needed, so `job=analyze` never does
    from sss.samplers import SamplerSpec

__all__ = [
    "ENGINES",
    "ConfigError",
    "RunSettings",
    "check_output_root",
    "check_rule_combination",
    "is_config_error",
    "validate",
]

# Keys that moved from the model config to the engine group, for the message that says where.
MOVED_TO_ENGINE = {
    "engine",
    "device",
    "batch_size",
    "gpu_memory_utilization",
    "tensor_parallel_size",
    "max_model_len",
    "enforce_eager",
    "kv_cache_memory_bytes",
}


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
    return isinstance(exc, ConfigError) or (spec is not None and isinstance(exc, spec.SamplerConfigError))


def without_hydra(cfg: DictConfig) -> DictConfig:
    """The config less Hydra's own node (present when composed with return_hydra_config), which
    is not ours to check; a copy that keeps the schema's types."""
    if "hydra" not in cfg:
        return cfg
    ours = cfg.copy()
    with open_dict(ours):
        del ours["hydra"]
    return ours


def validate(cfg: DictConfig) -> RunSettings:
    """Validate a config composed against the schema; raise ConfigError (or SamplerConfigError)
    on the first problem."""
    check_composed(cfg)
    try:
        ours = without_hydra(cfg)
        typed = OmegaConf.to_object(ours)
        plain = OmegaConf.to_container(ours, resolve=True, enum_to_str=True)
    except Exception as exc:  # interpolation errors and missing values
        from sss.schema.errors import one_line

        raise ConfigError(f"the config does not resolve: {one_line(str(exc))}") from exc
    if not isinstance(typed, RootSchema):
        raise ConfigError(
            "the config was not composed against sss's schema (conf/config.yaml "
            "names it first in its defaults list: /schema/root@_here_)"
        )
    assert isinstance(plain, dict)
    if plain.get("analyze") is None:  # job=analyze's settings: absent from the other jobs' records
        plain.pop("analyze", None)

    typed.check()
    job = plain["job"]["name"]
    if job == "analyze":
        typed.analyze.check()
        return RunSettings(spec=None, seed=plain["seed"], config=plain)
    typed.model.check()
    if job == "calibrate":
        from sss.calibration.options import check_options

        typed.calibration.check()
        check_options(plain["calibration"])
        return RunSettings(spec=None, seed=plain["seed"], config=plain)

    from sss.samplers import SamplerConfigError, SamplerSpec

    typed.engine.check()
    typed.logging.check()
    if typed.engine.name != "dummy":  # the dummy engine reads no weights
        from sss.models.check import check_model_path

        check_model_path(typed.model.path)

    task = plain["task"]
    typed.task.check()
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
        if plain["sampler"].get("calibration") == "auto":  # the calibration settings name it
            typed.calibration.check()
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


# Rules that cannot act beside greedy decoding (greedy=true or temperature=0): the argmax is
# the whole kept set, so truncation, re-weighting and a temperature change nothing.
def check_rule_combination(spec: SamplerSpec) -> None:
    """Refuse a sampler where one rule has no effect (docs/samplers.md, "Combinations")."""
    if not spec.is_greedy:
        return
    which = "sampler.greedy = true" if spec.greedy else "sampler.temperature = 0"
    if spec.greedy and spec.temperature not in (0.0, 1.0):
        raise _bad(
            "sampler.temperature",
            spec.temperature,
            f"1.0 (or 0) with {which}: greedy decoding takes the argmax, a temperature cannot change it",
        )
    idle = sorted(name for name in spec.enabled() if name not in ("greedy", "bins"))
    if idle:
        raise ConfigError(
            f"sampler.{idle[0]} is not allowed with {which}: greedy decoding keeps "
            f"only the argmax, so {', '.join(idle)} would have no effect "
            "(drop the rule, or sample with a temperature > 0)"
        )
