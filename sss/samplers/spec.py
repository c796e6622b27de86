"""`SamplerSpec`: one row's decoding rules, validated when it is built.

Field names follow SAMPLERS.md. Unset (``None``) means the rule is off. Every
check names the parameter, the value and the allowed range, so a bad config
fails before any model loads.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any
from collections.abc import Mapping, Sequence

DEFAULT_BINS = 10
BIN_ORDERS = ("low_first", "high_first")


class SamplerConfigError(ValueError):
    """A sampler parameter is outside its allowed range (or of the wrong kind)."""


def _fail(name: str, value: Any, allowed: str) -> None:
    raise SamplerConfigError(f"sampler.{name} = {value!r} is not allowed: expected {allowed}")


def _scalar(value: Any) -> Any:
    """numpy scalars, 0-d arrays and 0-d tensors as the Python number they hold."""
    if not isinstance(value, (bool, int, float)) and getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        return value.item()
    return value


def _number(name: str, value: Any, allowed: str) -> float:
    value = _scalar(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        _fail(name, value, allowed)
    return float(value)


def _integer(name: str, value: Any, allowed: str) -> int:
    value = _scalar(value)
    if isinstance(value, bool):
        _fail(name, value, allowed)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        _fail(name, value, allowed)
    return value


@dataclass(frozen=True)
class EDT:
    """Entropy-based dynamic temperature (Zhang et al. 2024): T = t0 * n ** (theta / H)."""

    n: float = 0.8
    theta: float = 1.0
    t0: float = 1.0

    def __post_init__(self) -> None:
        n = _number("edt.n", self.n, "a number N > 0")
        if not n > 0 or math.isinf(n):
            _fail("edt.n", self.n, "a finite number N > 0")
        theta = _number("edt.theta", self.theta, "a number theta >= 0")
        if not theta >= 0 or math.isinf(theta):
            _fail("edt.theta", self.theta, "a finite number theta >= 0")
        t0 = _number("edt.t0", self.t0, "a number T0 > 0")
        if not t0 > 0 or math.isinf(t0):
            _fail("edt.t0", self.t0, "a finite number T0 > 0")
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "theta", theta)
        object.__setattr__(self, "t0", t0)


@dataclass(frozen=True)
class CalibratedEpsilon:
    """Keep tokens whose estimated correctness 10**a * p**b reaches c (log10 power law)."""

    a: float
    b: float
    c: float = 0.05

    def __post_init__(self) -> None:
        a = _number("calibrated_epsilon.a", self.a, "a finite number (log10 intercept A)")
        if math.isinf(a):
            _fail("calibrated_epsilon.a", self.a, "a finite number (log10 intercept A)")
        b = _number("calibrated_epsilon.b", self.b, "a finite slope B > 0")
        # B <= 0 would make the estimate non-increasing in p, so the kept set
        # would stop being a prefix of the sorted vocabulary.
        if not b > 0 or math.isinf(b):
            _fail("calibrated_epsilon.b", self.b, "a finite slope B > 0")
        c = _number("calibrated_epsilon.c", self.c, "a correctness threshold 0 <= c <= 1")
        if not 0 <= c <= 1:
            _fail("calibrated_epsilon.c", self.c, "a correctness threshold 0 <= c <= 1")
        object.__setattr__(self, "a", a)
        object.__setattr__(self, "b", b)
        object.__setattr__(self, "c", c)

    @property
    def epsilon(self) -> float:
        """The equivalent epsilon-sampling threshold (c / 10**a) ** (1 / b)."""
        if self.c == 0:
            return 0.0
        # in log10 space: (c / 10**a) ** (1 / b) overflows (OverflowError) for e.g. a = -10, b = 0.01
        try:
            return 10.0 ** ((math.log10(self.c) - self.a) / self.b)
        except OverflowError:  # above 1: only the argmax is kept
            return math.inf


@dataclass(frozen=True)
class SamplerSpec:
    """The decoding rules of one row. Unset fields are off; set ones stack (kept sets intersect)."""

    temperature: float = 1.0
    greedy: bool = False
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    epsilon: float | None = None
    eta: float | None = None
    edt: EDT | None = None
    greedy_threshold: float | None = None
    calibrated_topk: tuple[int, ...] | None = None
    calibrated_topk_order: str = "low_first"
    calibrated_epsilon: CalibratedEpsilon | None = None
    confidence_bin: int | None = None
    bins: int = DEFAULT_BINS

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)

        bins = _integer("bins", self.bins, "an integer number of confidence bins >= 1")
        if bins < 1:
            _fail("bins", self.bins, "an integer number of confidence bins >= 1")
        set_("bins", bins)

        t = _number("temperature", self.temperature, "a temperature T >= 0 (0 means greedy)")
        if not t >= 0 or math.isinf(t):
            _fail("temperature", self.temperature, "a finite temperature T >= 0 (0 means greedy)")
        set_("temperature", t)

        if not isinstance(_scalar(self.greedy), bool):
            _fail("greedy", self.greedy, "true or false")
        set_("greedy", _scalar(self.greedy))

        if self.top_k is not None:
            k = _integer("top_k", self.top_k, "an integer k >= 1 (0 or null: off)")
            if k < 0:
                _fail("top_k", self.top_k, "an integer k >= 1 (0 or null: off)")
            set_("top_k", k or None)

        self._probability("top_p", lambda p: 0 < p <= 1, "0 < top_p <= 1")
        self._probability("min_p", lambda p: 0 <= p <= 1, "0 <= min_p <= 1")
        self._probability("epsilon", lambda p: 0 <= p < 1, "0 <= epsilon < 1")
        self._probability("eta", lambda p: 0 <= p < 1, "0 <= eta < 1")
        self._probability("greedy_threshold", lambda p: 0 <= p <= 1, "0 <= greedy_threshold <= 1")

        if self.edt is not None:
            set_("edt", _coerce(EDT, self.edt, "edt"))
            if t != 1.0:
                _fail("temperature", self.temperature, "1.0 when edt is set (EDT sets its own temperature; use edt.t0)")

        if self.calibrated_epsilon is not None:
            set_("calibrated_epsilon", _coerce(CalibratedEpsilon, self.calibrated_epsilon, "calibrated_epsilon"))

        if self.calibrated_topk_order not in BIN_ORDERS:
            _fail("calibrated_topk_order", self.calibrated_topk_order, f"one of {BIN_ORDERS}")
        if self.calibrated_topk is not None:
            ks = self.calibrated_topk
            allowed = f"a list of {bins} integers k >= 1, one per confidence bin"
            if isinstance(ks, (str, bytes)) or not isinstance(ks, Sequence):
                _fail("calibrated_topk", ks, allowed)
            if len(ks) != bins:
                _fail("calibrated_topk", list(ks), f"{allowed} (got {len(ks)} values)")
            ks = tuple(_integer("calibrated_topk", k, allowed) for k in ks)
            if any(k < 1 for k in ks):
                _fail("calibrated_topk", list(ks), allowed)
            if self.calibrated_topk_order == "high_first":
                ks = ks[::-1]  # the paper's code lists bin n first; we store bin 1 first
                set_("calibrated_topk_order", "low_first")
            set_("calibrated_topk", ks)

        if self.confidence_bin is not None:
            m = _integer("confidence_bin", self.confidence_bin, f"a bin index 1 <= m <= {bins}")
            if not 1 <= m <= bins:
                _fail("confidence_bin", self.confidence_bin, f"a bin index 1 <= m <= {bins}")
            set_("confidence_bin", m)

    def _probability(self, name: str, ok, allowed: str) -> None:
        value = getattr(self, name)
        if value is None:
            return
        p = _number(name, value, allowed)
        if not ok(p):
            _fail(name, value, allowed)
        object.__setattr__(self, name, p)

    # ------------------------------------------------------------------ views
    @property
    def is_greedy(self) -> bool:
        return self.greedy or self.temperature == 0.0

    def enabled(self) -> dict[str, Any]:
        """The rules this spec switches on, with their parameters (for names and logs)."""
        out: dict[str, Any] = {}
        if self.is_greedy:
            out["greedy"] = True
        elif self.edt is None and self.temperature != 1.0:
            out["temperature"] = self.temperature
        for f in fields(self):
            if f.name in ("temperature", "greedy", "calibrated_topk_order", "bins"):
                continue
            value = getattr(self, f.name)
            if value is None:
                continue
            if hasattr(value, "__dataclass_fields__"):
                value = asdict(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        if self.bins != DEFAULT_BINS and (self.calibrated_topk or self.confidence_bin):
            out["bins"] = self.bins
        return out

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.calibrated_topk is not None:
            out["calibrated_topk"] = list(self.calibrated_topk)
        return out

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> SamplerSpec:
        """Build from a plain mapping (a Hydra `sampler` node, vLLM `extra_args`).

        Unknown keys are an error; keys that only describe the config (``name``) are ignored.
        """
        known = {f.name for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            if key in IGNORED_KEYS:
                continue
            if key not in known:
                raise SamplerConfigError(f"sampler.{key} is not a sampler parameter: expected one of {sorted(known)}")
            if value is not None:
                kwargs[key] = value
        if "calibrated_topk" in kwargs:
            kwargs["calibrated_topk"] = _as_list("calibrated_topk", kwargs["calibrated_topk"])
        return cls(**kwargs)


# `calibration*`: which job=calibrate artifact filled calibrated_topk / calibrated_epsilon
# (sss.calibration.for_samplers), recorded beside the values it gave
IGNORED_KEYS = frozenset({"name", "calibration", "calibration_threshold", "calibration_sha256"})


def _as_list(name: str, value: Any) -> tuple:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        try:
            return tuple(value)
        except TypeError:
            _fail(name, value, "a list")
    return tuple(value)


def _coerce(cls, value: Any, name: str):
    if isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        allowed = {f.name for f in fields(cls)}
        unknown = set(value) - allowed
        if unknown:
            raise SamplerConfigError(f"sampler.{name} has unknown keys {sorted(unknown)}: expected {sorted(allowed)}")
        for f in fields(cls):
            if f.default is MISSING and f.name not in value:
                _fail(f"{name}.{f.name}", None, "a number (it has no default)")
        # null is not "the default": a key set to null is refused (leave it out for the default)
        for key, inner in value.items():
            if inner is None:
                default = next(f.default for f in fields(cls) if f.name == key)
                _fail(
                    f"{name}.{key}",
                    None,
                    "a number"
                    + ("; it has no default" if default is MISSING else f" (leave it out for the default {default})"),
                )
        return cls(**value)
    _fail(name, value, f"a mapping with keys {[f.name for f in fields(cls)]}")
