"""The `calibration` group (conf/calibration/*.yaml): job=calibrate's settings. The numbers'
ranges are checked here; the data source, the trace engine and the data file by
sss.calibration.options.check_options, beside the code that defines them."""

from __future__ import annotations

import math
from dataclasses import dataclass

from omegaconf import MISSING

from .common import at_least, bad


@dataclass
class CalibrationSchema:
    data: str = MISSING
    data_files: str | None = MISSING
    limit: int | None = MISSING
    chat_template: bool = MISSING
    engine: str = MISSING
    top_k: int = MISSING
    bins: int = MISSING
    min_support: int = MISSING
    thresholds: list[float] = MISSING
    batch_size: int = MISSING
    max_length: int = MISSING

    def check(self) -> None:
        at_least("calibration.limit", self.limit, 1, allow_none=True)
        for key, low in (("top_k", 1), ("bins", 1), ("min_support", 0), ("batch_size", 1), ("max_length", 2)):
            at_least(f"calibration.{key}", getattr(self, key), low)
        if not self.thresholds or not all(math.isfinite(t) and 0 < t <= 1 for t in self.thresholds):
            raise bad("calibration.thresholds", list(self.thresholds), "a non-empty list of numbers 0 < c <= 1")
