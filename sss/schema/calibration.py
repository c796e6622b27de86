"""The `calibration` group (conf/calibration/*.yaml): job=calibrate's settings. Their ranges and
the data file are checked by sss.calibration.options.check_options, beside the code that uses
them (the data sources and trace engines are defined there)."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING


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
