"""The top level of the config (conf/config.yaml), with one typed field per group."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import MISSING

from .analyze import AnalyzeSchema
from .calibration import CalibrationSchema
from .common import at_least, bad
from .engine import EngineSchema
from .job import JobSchema
from .logging import LoggingSchema
from .model import ModelSchema
from .sampler import SamplerSchema
from .task import TaskSchema


@dataclass
class RootSchema:
    output_root: str = MISSING
    seed: int = MISSING
    force: bool = MISSING
    # set in conf/config.yaml itself; the sampler group's files each set one rule's parameters
    sampler: SamplerSchema = MISSING
    job: JobSchema = MISSING
    # an engine's or a task's own schema (engine.py, task.py) when its YAML names one
    engine: EngineSchema = MISSING
    model: ModelSchema = MISSING
    task: TaskSchema = MISSING
    logging: LoggingSchema = MISSING
    calibration: CalibrationSchema = MISSING
    # job=analyze's settings: set by conf/job/analyze.yaml, null for the other jobs
    analyze: AnalyzeSchema | None = None

    def check(self) -> None:
        at_least("seed", self.seed, 0)
        check_output_root(self.output_root)


def check_output_root(value: Any) -> None:
    """`output_root` must name a folder this user can write: an existing one, or one that can be
    made below the nearest existing folder. Checked before Hydra writes its logs there
    (launch.py, from the command line) and again on the composed config."""
    allowed = "a writable folder path (e.g. outputs)"
    if not isinstance(value, str) or not value.strip():
        raise bad("output_root", value, allowed)
    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():
        raise bad("output_root", value, f"{allowed}; it is a file")
    existing = path.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise bad("output_root", value, f"{allowed}; {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise bad("output_root", value, f"{allowed}; {existing} is not writable by this user")
