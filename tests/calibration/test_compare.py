"""job=analyze over calibration directories: the paper's Figure 2 across calibrations, and
calibration directories kept out of the runs table when both are under the input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from sss.calibration.artifact import summarize, write_artifact
from sss.calibration.grid import build_grid
from sss.calibration.traces import to_table
from sss.runs.layout import write_json
from sss.runs.manifest import Manifest

sys.path.insert(0, str(Path(__file__).parents[1]))
from test_analyze import analyze, make_run  # noqa: E402

from synthetic import random_steps  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_calibration(folder: Path, model: str, seed: int) -> dict:
    grid = build_grid(to_table(random_steps(5000, k=8, seed=seed)), 10)
    data = {
        "model": {"name": model},
        "engine": "hf",
        "data": {"source": "gsm8k", "tokens": 5000, "documents": 50},
        **summarize(grid, [0.05], 10),
    }
    folder.mkdir(parents=True)
    write_artifact(folder, data)
    write_json(folder / "manifest.json", Manifest({"job": "calibrate", "model": model}).finish("done"))
    (folder / "DONE").write_text("")
    return data


def test_figure_2_over_calibrations_and_runs_table_without_them(tmp_path):
    a = make_calibration(tmp_path / "calibration" / "m-a" / "x", "model-a", 0)
    b = make_calibration(tmp_path / "calibration" / "m-b" / "x", "model-b", 1)
    make_run(tmp_path / "run1", "min_p", {"min_p": 0.1}, 0, metrics={"accuracy": 0.5})
    result = analyze(f"analyze.input={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "HEAVY=[]" in result.stdout  # no torch: analysis reads files only
    folder = tmp_path / "analysis" / "calibrations"
    assert (folder / "accuracy_vs_share.png").read_bytes()[:8] == PNG_MAGIC
    table = pd.read_csv(folder / "calibrations.csv")
    assert set(table["label"]) == {"model-a", "model-b"} and len(table) == 20
    mine = table[table["model"] == "model-a"].sort_values("bin")
    np.testing.assert_allclose(mine["expected_accuracy"], a["expected_accuracy"], equal_nan=True)
    assert list(table[table["model"] == "model-b"].sort_values("bin")["steps"]) == b["bin_steps"]
    runs = pd.read_csv(tmp_path / "analysis" / "runs.csv")
    assert len(runs) == 1 and runs["sampler"].tolist() == ["min_p"]


def test_unfinished_calibration_is_left_out(tmp_path):
    make_calibration(tmp_path / "a", "model-a", 0)
    make_calibration(tmp_path / "b", "model-b", 1)
    (tmp_path / "b" / "DONE").unlink()
    result = analyze(f"analyze.input={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(tmp_path / "analysis" / "calibrations" / "calibrations.csv")
    assert set(table["model"]) == {"model-a"}
    assert not (tmp_path / "analysis" / "runs.csv").exists()
    json.loads((tmp_path / "a" / "calibration.json").read_text())
