"""The `logging` group (conf/logging/*.yaml): per-token traces. Its range checks are the tracing
module's own (sss.tracing.validate_logging), which the library shares."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING


@dataclass
class LoggingSchema:
    tokens: bool = MISSING
    top_k: int = MISSING
