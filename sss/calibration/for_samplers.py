"""A calibration artifact feeding the calibrated samplers, resolved while the config is checked.

`sampler.calibration=<dir>` with
- `calibrated_topk`: the artifact's k list for `sampler.calibration_threshold` replaces the
  config's list (one of the artifact's thresholds, or an error listing them);
- `calibrated_epsilon`: the artifact's fitted A and B (log10) replace the config's, c stays.
The sampler's `bins` must equal the artifact's. `sampler.calibration=auto` names the directory
that `job=calibrate` writes for this config's model and `calibration.` settings (so a multirun
`-m job=calibrate,evaluate` calibrates, then evaluates with the result); samplers without a
calibrated rule ignore it, so one sweep can set it for all its samplers.

The resolved values are written back into the sampler config, with the artifact's absolute path
and content hash, so config.yaml shows what ran and the run directory's hash changes with the
artifact.
"""

from __future__ import annotations

from typing import Any

from .artifact import CalibrationArtifactError, read_artifact


def _bad(key: str, value: Any, allowed: str) -> CalibrationArtifactError:
    return CalibrationArtifactError(f"sampler.{key} = {value!r} is not allowed: expected {allowed}")


def manifest_record(sampler: dict[str, Any]) -> dict[str, Any] | None:
    """What a run's manifest says about the artifact it used (None: none)."""
    if not sampler.get("calibration"):
        return None
    return {
        "path": sampler["calibration"],
        "sha256": sampler.get("calibration_sha256"),
        "threshold": sampler.get("calibration_threshold") if sampler.get("calibrated_topk") is not None else None,
    }


def auto_calibration(config: dict[str, Any]) -> str | None:
    """The calibration directory of this config's model and calibration settings (for a
    calibrated sampler; None otherwise). It must be finished."""
    sampler = config["sampler"]
    if sampler.get("calibrated_topk") is None and sampler.get("calibrated_epsilon") is None:
        return None
    from .options import calibration_dir, check_options

    check_options(config["calibration"])
    folder = calibration_dir(config)
    if not (folder / "DONE").is_file():
        raise _bad(
            "calibration",
            "auto",
            f"a finished calibration of model {config['model']['name']} "
            f"with these calibration settings at {folder} (make it first: python launch.py "
            "job=calibrate with the same model and calibration.* settings)",
        )
    return str(folder)


def resolve_calibration(sampler: dict[str, Any]) -> dict[str, Any]:
    """The sampler config with the artifact's values in; unchanged when no artifact is named."""
    path = sampler.get("calibration")
    threshold = sampler.get("calibration_threshold")
    if path is None:  # typed-in values (calibrated_topk.yaml's threshold then means nothing)
        return sampler
    if not isinstance(path, str) or not path:
        raise _bad("calibration", path, "a calibration directory written by job=calibrate")
    topk, epsilon = sampler.get("calibrated_topk"), sampler.get("calibrated_epsilon")
    if topk is None and epsilon is None:
        raise _bad(
            "calibration", path, "a calibrated sampler to feed (sampler=calibrated_topk or sampler=calibrated_epsilon)"
        )
    artifact = read_artifact(path)
    out = dict(sampler)
    bins = sampler.get("bins", 10)
    if artifact.bins != bins:
        raise _bad(
            "calibration",
            path,
            f"a calibration with sampler.bins = {bins} bins "
            f"(this one has {artifact.bins}; set sampler.bins={artifact.bins} or recalibrate)",
        )
    if topk is not None:
        ks = (
            artifact.k_list(threshold)
            if isinstance(threshold, (int, float)) and not isinstance(threshold, bool)
            else None
        )
        if ks is None:
            raise _bad("calibration_threshold", threshold, f"one of the artifact's thresholds {artifact.thresholds}")
        out["calibrated_topk"] = ks
        out["calibrated_topk_order"] = "low_first"  # artifacts list bin 1 first
    if epsilon is not None:
        fit = artifact.fit
        if fit is None:
            raise _bad(
                "calibration",
                path,
                "a calibration with a power-law fit (this one has too few grid cells with c_hat > 0 to fit A and B)",
            )
        out["calibrated_epsilon"] = {**(epsilon or {}), "a": fit["a"], "b": fit["b"]}
    out["calibration"] = str(artifact.path)
    out["calibration_sha256"] = artifact.sha256
    return out
