"""The `analyze` node (set by conf/job/analyze.yaml): job=analyze's input, output and options."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import MISSING

from .common import Choice, bad


class Scoring(Choice):
    sss = "sss"
    paper = "paper"


class RankStat(Choice):
    mean = "mean"
    max = "max"


@dataclass
class AnalyzeSchema:
    input: str | None = MISSING
    output: str | None = MISSING
    metric: str = MISSING
    scoring: Scoring = MISSING
    rescore: bool = MISSING
    low_conf: float = MISSING
    sampled_prob: float = MISSING
    vote_rank_stat: RankStat = MISSING
    vote_rank_cap: float = MISSING
    vote_need_event: bool = MISSING
    until_answer: bool = MISSING

    def check(self) -> None:
        """The input must be a directory holding at least one run (a manifest.json)."""
        from sss.runs.discovery import find_runs

        source = self.input
        if not source:
            raise bad("analyze.input", source, "a run or sweep directory (analyze.input=<dir>)")
        if not Path(source).expanduser().is_dir():
            raise bad("analyze.input", source, "an existing directory")
        if not find_runs(Path(source).expanduser()):
            raise bad(
                "analyze.input",
                source,
                "a directory with at least one run in it (a manifest.json below it, or a sweep.json listing runs)",
            )
        if self.output == "":
            raise bad("analyze.output", self.output, "a directory path, or null for <input>/analysis")
        if not self.metric:
            raise bad("analyze.metric", self.metric, "a metric name (e.g. accuracy)")
        # the trace analyses (sss.analysis.traces): thresholds are probabilities
        for key in ("low_conf", "sampled_prob"):
            if not 0 < getattr(self, key) <= 1:
                raise bad(f"analyze.{key}", getattr(self, key), "a probability 0 < x <= 1")
        if not self.vote_rank_cap >= 1:
            raise bad("analyze.vote_rank_cap", self.vote_rank_cap, "a number >= 1 (rank 1 is the most probable token)")
