"""calibration.json: what the calibrated samplers read, and the checks they run on it.

`read_artifact(dir)` is called while the config is validated (before any model loads): it
refuses a missing or unfinished directory, unreadable JSON, a file of another format, and
malformed k lists or fit, each with one line naming `sampler.calibration` and the path. The
content hash (sha256 of calibration.json's bytes) goes into the run's config and manifest, so a
run directory's hash changes when the artifact does.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FILE = "calibration.json"
FORMAT = "sss-calibration"
FORMAT_VERSION = 1


class CalibrationArtifactError(ValueError):
    """A calibration artifact is missing, unfinished, corrupt or does not fit the request."""


@dataclass(frozen=True)
class Calibration:
    path: Path  # the calibration directory (absolute)
    sha256: str  # of calibration.json
    data: dict[str, Any]

    @property
    def bins(self) -> int:
        return self.data["bins"]

    @property
    def thresholds(self) -> list[float]:
        return sorted(float(t) for t in self.data["k_lists"])

    def k_list(self, threshold: float) -> list[int] | None:
        for key, ks in self.data["k_lists"].items():
            if math.isclose(float(key), float(threshold), rel_tol=0, abs_tol=1e-12):
                return list(ks)
        return None

    @property
    def fit(self) -> dict[str, Any] | None:
        return self.data.get("fit")


def _bad(path: Any, what: str) -> CalibrationArtifactError:
    return CalibrationArtifactError(f"sampler.calibration = {str(path)!r} is not allowed: {what}")


def summarize(grid, thresholds, min_support: int) -> dict[str, Any]:
    """The artifact's numbers from a grid: bins, K, the fit, the k lists and per-bin figures
    (the job adds where they came from: model, data, engine, chat template, version)."""
    from .fit import epsilon_equivalent, expected_accuracy, fit_power_law, k_lists, threshold_key
    from .grid import bin_steps

    fit = fit_power_law(grid)
    return {
        "bins": int(grid["bin"].max()),
        "bin_rule": "bin m = ((m-1)/n, m/n] on p_max (sss.samplers.bins)",
        "top_k": int(grid["rank"].max()),
        "rank_rule": "rank = number of vocabulary entries with log-probability >= the gold token's",
        "min_support": int(min_support),
        "bin_steps": [int(n) for n in bin_steps(grid)],
        "token_share": [float(s) for s in grid.groupby("bin")["token_share"].first()],
        "expected_accuracy": expected_accuracy(grid),
        "fit": fit,
        "epsilon_equivalent": {threshold_key(c): epsilon_equivalent(fit, c) for c in thresholds} if fit else None,
        "k_rule": "k = the largest rank r with c_hat >= threshold; 1 if none, or if the bin has "
        "fewer than min_support steps; bin 1 first",
        "k_lists": k_lists(grid, thresholds, min_support),
    }


def write_artifact(folder: Path, data: dict[str, Any]) -> Path:
    from sss.runs.layout import write_json

    body = {"format": FORMAT, "format_version": FORMAT_VERSION, **data}
    write_json(folder / FILE, body)
    return folder / FILE


def read_artifact(path: str | Path) -> Calibration:
    folder = Path(path).expanduser()
    if folder.is_file() and folder.name == FILE:
        folder = folder.parent
    if not folder.is_dir():
        raise _bad(path, "expected a calibration directory written by job=calibrate (it does not exist)")
    file = folder / FILE
    if not file.is_file():
        raise _bad(path, f"expected a calibration directory written by job=calibrate (no {FILE} in it)")
    if not (folder / "DONE").is_file():
        raise _bad(
            path, "expected a finished calibration (no DONE: the job=calibrate run did not finish; re-launch it)"
        )
    raw = file.read_bytes()
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise _bad(path, f"expected valid JSON in {FILE} ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise _bad(path, f"expected {FILE} of format {FORMAT!r}")
    if data.get("format_version") != FORMAT_VERSION:
        raise _bad(path, f"expected format_version {FORMAT_VERSION} (got {data.get('format_version')!r})")
    bins = data.get("bins")
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise _bad(path, f"expected an integer bins >= 1 in {FILE} (got {bins!r})")
    lists = data.get("k_lists")
    if not isinstance(lists, dict) or not lists:
        raise _bad(path, f"expected k_lists (threshold -> one k per bin) in {FILE}")
    for key, ks in lists.items():
        try:
            float(key)
        except ValueError:
            raise _bad(path, f"expected numeric thresholds in k_lists (got {key!r})") from None
        if (
            not isinstance(ks, list)
            or len(ks) != bins
            or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in ks)
        ):
            raise _bad(path, f"expected k_lists[{key!r}] to be {bins} integers >= 1 (got {ks!r})")
    fit = data.get("fit")
    if fit is not None and (
        not isinstance(fit, dict)
        or fit.get("log_base") != 10
        or not all(isinstance(fit.get(k), (int, float)) and math.isfinite(fit[k]) for k in ("a", "b"))
    ):
        raise _bad(path, f"expected fit with finite a, b and log_base 10 in {FILE} (got {fit!r})")
    return Calibration(folder.resolve(), hashlib.sha256(raw).hexdigest(), data)
