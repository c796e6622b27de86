"""Several calibrations side by side (job=analyze), in `<output>/calibrations/`:
`calibrations.csv` (one row per bin per calibration) and `accuracy_vs_share.png`, the paper's
Figure 2: each bin's expected accuracy against its share of traced tokens, one line per
calibration (labelled by model, and by data/engine where those differ between them)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .artifact import FILE


def is_calibration(folder: Path) -> bool:
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return (manifest.get("run") or {}).get("job") == "calibrate"


def split_calibrations(folders: list[Path]) -> tuple[list[Path], list[Path]]:
    """(finished calibration directories, everything else); unfinished calibrations are dropped."""
    calibrations, others = [], []
    for folder in folders:
        if is_calibration(Path(folder)):
            if (Path(folder) / "DONE").is_file() and (Path(folder) / FILE).is_file():
                calibrations.append(Path(folder))
        else:
            others.append(folder)
    return calibrations, others


def calibrations_table(folders: list[Path]) -> pd.DataFrame:
    rows = []
    for folder in folders:
        data = json.loads((folder / FILE).read_text())
        fit = data.get("fit") or {}
        for m, (steps, share, accuracy) in enumerate(
            zip(data["bin_steps"], data["token_share"], data["expected_accuracy"], strict=True), start=1
        ):
            rows.append(
                {
                    "calibration": str(folder),
                    "model": data["model"]["name"],
                    "data": data["data"]["source"],
                    "engine": data["engine"],
                    "tokens": data["data"]["tokens"],
                    "bin": m,
                    "steps": steps,
                    "token_share": share,
                    "expected_accuracy": accuracy,
                    "fit_a": fit.get("a"),
                    "fit_b": fit.get("b"),
                    "fit_r2": fit.get("r2"),
                }
            )
    frame = pd.DataFrame(rows)
    varying = [c for c in ("data", "engine") if frame[c].nunique() > 1]
    frame["label"] = frame[["model", *varying]].astype(str).agg(" / ".join, axis=1)
    if frame.groupby("label")["calibration"].nunique().max() > 1:  # still ambiguous: name the folder
        frame["label"] += " (" + frame["calibration"].map(lambda p: Path(p).name) + ")"
    return frame


def compare_calibrations(folders: list[Path], output: Path) -> list[Path]:
    from .figures import accuracy_vs_share

    folder = output / "calibrations"
    folder.mkdir(parents=True, exist_ok=True)
    frame = calibrations_table(folders)
    frame.to_csv(folder / "calibrations.csv", index=False)
    figure = accuracy_vs_share(frame[frame["steps"] > 0], folder / "accuracy_vs_share.png")
    return [folder / "calibrations.csv", figure]
