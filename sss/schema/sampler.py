"""The `sampler` node: every rule's parameter, off (null) by default, set in conf/config.yaml;
the `sampler` group's files (conf/sampler/*.yaml) each set one rule's and stack. Types are
enforced here; ranges and combinations are the rules' own (sss.samplers.SamplerSpec, and
sss.config.check_rule_combination), which the library checks the same way."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from .common import Choice


class TopkOrder(Choice):
    low_first = "low_first"
    high_first = "high_first"


@dataclass
class EdtSchema:
    n: float = MISSING
    theta: float = MISSING
    t0: float = MISSING


@dataclass
class CalibratedEpsilonSchema:
    a: float = MISSING
    b: float = MISSING
    c: float = MISSING


@dataclass
class SamplerSchema:
    temperature: float = MISSING
    greedy: bool = MISSING
    top_k: int | None = MISSING
    top_p: float | None = MISSING
    min_p: float | None = MISSING
    epsilon: float | None = MISSING
    eta: float | None = MISSING
    edt: EdtSchema | None = MISSING
    greedy_threshold: float | None = MISSING
    calibrated_topk: list[int] | None = MISSING
    calibrated_topk_order: TopkOrder = MISSING
    calibrated_epsilon: CalibratedEpsilonSchema | None = MISSING
    confidence_bin: int | None = MISSING
    bins: int = MISSING
    # a job=calibrate directory, or auto (sss.calibration.for_samplers)
    calibration: str | None = MISSING
    calibration_threshold: float | None = MISSING
