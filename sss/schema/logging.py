"""The `logging` group (conf/logging/*.yaml): per-token traces (sss.tracing, docs/traces.md)."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from .common import bad


@dataclass
class LoggingSchema:
    # write tokens.parquet in the run directory
    tokens: bool = MISSING
    # the most probable tokens kept per step (list columns of tokens.parquet)
    top_k: int = MISSING

    def check(self) -> None:
        if self.top_k < 0:
            raise bad("logging.top_k", self.top_k, "an integer >= 0 (the most probable tokens kept per step)")
        if self.top_k > 0 and not self.tokens:
            raise bad(
                "logging.top_k",
                self.top_k,
                "0 unless logging.tokens=true (logging=tokens): the top tokens are columns of tokens.parquet",
            )
