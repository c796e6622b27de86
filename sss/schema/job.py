"""The `job` group (conf/job/*.yaml): what launch.py runs."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from .common import Choice


class Job(Choice):
    evaluate = "evaluate"
    analyze = "analyze"
    calibrate = "calibrate"


@dataclass
class JobSchema:
    name: Job = MISSING
