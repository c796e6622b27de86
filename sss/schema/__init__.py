"""The config's schema: one dataclass per section, registered in Hydra's ConfigStore, so OmegaConf
enforces every key's type when the config is composed (docs/reliability.md, "The schema").

conf/config.yaml names the root first in its defaults list (`/schema/root@_here_`); the engine
YAMLs and the tasks with keys of their own name theirs (`/schema/engine/<name>@_here_`,
`/schema/task/<name>@_here_`). A section's ranges are its dataclass's `check()`; the sampler's
are the rules' own (sss.samplers.SamplerSpec), and what names code or data (a task's files, the
calibration data and trace engine) is checked by the module that owns it: see each file.
Nothing here imports torch (tests/test_schema.py).
"""

from __future__ import annotations

from .analyze import AnalyzeSchema
from .calibration import CalibrationSchema
from .common import ConfigError
from .compose import check_composed, compose
from .engine import ENGINES, EngineSchema
from .engine import VARIANTS as ENGINE_SCHEMAS
from .errors import config_error
from .job import JobSchema
from .logging import LoggingSchema
from .model import ModelSchema
from .root import RootSchema, check_output_root
from .sampler import SamplerSchema
from .task import VARIANTS as TASK_SCHEMAS
from .task import TaskSchema


def register() -> None:
    """Store the schemas in Hydra's ConfigStore (group `schema`), where the YAML files find them.
    Called by the hydra_plugins.sss_schema plugin, which Hydra imports before it composes."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(group="schema", name="root", node=RootSchema)
    for name, node in ENGINE_SCHEMAS.items():
        store.store(group="schema/engine", name=name, node=node)
    for name, node in TASK_SCHEMAS.items():
        store.store(group="schema/task", name=name, node=node)


__all__ = [
    "ENGINES",
    "AnalyzeSchema",
    "CalibrationSchema",
    "ConfigError",
    "EngineSchema",
    "JobSchema",
    "LoggingSchema",
    "ModelSchema",
    "RootSchema",
    "SamplerSchema",
    "TaskSchema",
    "check_composed",
    "check_output_root",
    "compose",
    "config_error",
    "register",
]
