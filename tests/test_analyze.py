"""job=analyze over run directories: the table, the figures, the report; no torch, no model.

The runs here are written with the real run-directory writers (sss.runs) and hand-picked
metrics, in directories whose names deliberately say nothing true about the run: analyze must
read manifests and configs, never names. The SLURM tests analyse real runs.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import ROOT

HEAVY = ("torch", "transformers", "lm_eval", "vllm")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Run the real entrypoint in a fresh interpreter, then report which heavy modules it imported.
PROBE = f"""
import json, runpy, sys
sys.argv = ["launch.py", *json.loads(sys.argv[1])]
code = 0
try:
    runpy.run_path("launch.py", run_name="__main__")
except SystemExit as exc:
    code = exc.code or 0
print("HEAVY=" + json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))
sys.exit(code)
"""


def analyze(*overrides: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(["job=analyze", *overrides])],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result


def make_run(
    folder: Path,
    sampler: str,
    params: dict,
    seed: int,
    status: str = "done",
    metrics: dict | None = None,
    repeats: int = 1,
    error: str | None = None,
) -> Path:
    from sss.runs.layout import RunDir, write_atomic, write_json
    from sss.runs.manifest import Manifest

    run = RunDir(folder)
    config = {
        "seed": seed,
        "task": {"name": "arith", "limit": 4, "repeats": repeats, "num_fewshot": 3, "max_gen_toks": 32},
        "model": {"name": "tiny", "engine": "hf"},
        "sampler": params,
        "job": {"name": "evaluate"},
    }
    write_atomic(run.config, yaml.safe_dump(config))
    manifest = Manifest(
        {
            "task": "arith",
            "model": "tiny",
            "sampler": sampler,
            "sampler_params": params,
            "seed": seed,
            "job": "evaluate",
        }
    )
    if status == "done":
        write_json(
            run.metrics,
            {"task": "arith", "model": "tiny", "sampler": sampler, "n_docs": 4, "repeats": repeats, "metrics": metrics},
        )
        write_json(run.manifest, manifest.finish("done"))
        run.mark_done()
    elif status == "failed":
        write_json(run.manifest, manifest.finish("failed", error=error))
    else:
        write_json(run.manifest, manifest.data)  # still "running": a killed or live run
    return folder


def k_metrics(accuracy: float, n: int) -> dict:
    """maj@k/pass@k in the shape issue 4's metrics.json has (k = 1, 2, 4, ... N)."""
    out = {"accuracy": accuracy, "overall_correct": accuracy / 2}
    k = 1
    while k <= n:
        out[f"maj@{k}"] = min(1.0, accuracy + 0.05 * math.log2(k))
        out[f"pass@{k}"] = min(1.0, accuracy + 0.1 * math.log2(k))
        k *= 2
    return out


@pytest.fixture
def sweep(tmp_path) -> tuple[Path, dict[str, dict]]:
    """A small sweep: min_p over 3 values x 2 seeds (4 samples per question), top_p once,
    one failed run and one still running. Returns the root and the expected metrics per run."""
    root = tmp_path / "outputs"
    expected = {}
    n = 0
    for min_p, base in ((0.05, 0.2), (0.1, 0.4), (0.3, 0.3)):
        for seed in (0, 1):
            n += 1
            metrics = k_metrics(base + 0.1 * seed, 4)
            run = make_run(root / "x" / f"top_k-{n}", "min_p", {"min_p": min_p}, seed, metrics=metrics, repeats=4)
            expected[str(run.resolve())] = metrics
    run = make_run(
        root / "y" / "min_p-0.9", "top_p", {"top_p": 0.9}, 0, metrics={"accuracy": 0.25, "overall_correct": 0.25}
    )
    expected[str(run.resolve())] = {"accuracy": 0.25, "overall_correct": 0.25}
    make_run(root / "z" / "a", "min_p", {"min_p": 0.2}, 0, status="failed", error="RuntimeError: CUDA out of memory")
    make_run(root / "z" / "b", "min_p", {"min_p": 0.5}, 0, status="running")
    return root, expected


def test_analyze_writes_table_figures_and_report_without_torch(sweep):
    root, expected = sweep
    result = analyze(f"analyze.input={root}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "HEAVY=[]" in result.stdout, result.stdout[-500:]

    out = root / "analysis"
    table = pd.read_parquet(out / "runs.parquet")
    assert len(table) == 9
    assert table["status"].value_counts().to_dict() == {"done": 7, "failed": 1, "running": 1}
    for _, row in table[table["status"] == "done"].iterrows():
        for name, value in expected[row["run_dir"]].items():
            assert row[name] == pytest.approx(value), (row["run_dir"], name)
    unfinished = table[table["status"] != "done"]
    assert unfinished["accuracy"].isna().all()
    assert set(unfinished["param.min_p"]) == {0.2, 0.5}
    assert "out of memory" in unfinished.set_index("status").loc["failed", "error"]
    # identity comes from the manifest, not from the (misleading) directory names
    assert sorted(table["sampler"].unique()) == ["min_p", "top_p"]
    assert set(table.loc[table["sampler"] == "min_p", "seed"]) == {0, 1}
    top_p = table[table["sampler"] == "top_p"].iloc[0]
    assert top_p["param.top_p"] == 0.9 and math.isnan(top_p["maj@4"])
    csv = pd.read_csv(out / "runs.csv")
    assert list(csv.columns) == list(table.columns) and len(csv) == 9

    figures = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert "accuracy_vs_min_p__min_p.png" in figures
    assert "maj_at_k__arith__tiny.png" in figures and "pass_at_k__arith__tiny.png" in figures
    # top_p has one value only: nothing swept, no figure
    assert not any("top_p" in name for name in figures)
    for name in figures:
        assert (out / "figures" / name).read_bytes()[:8] == PNG_MAGIC

    report = (out / "report.md").read_text()
    assert "9 runs: 7 done, 1 failed, 1 running" in report
    assert "CUDA out of memory" in report
    assert "![accuracy_vs_min_p__min_p](figures/accuracy_vs_min_p__min_p.png)" in report
    # the best min_p setting by mean accuracy over seeds is 0.1 (0.4 and 0.5)
    best = report.split("## Best setting")[1]
    assert "min_p=0.1" in best and "0.4500" in best

    # re-runnable: the same table again, figures replaced rather than piling up
    again = analyze(f"analyze.input={root}")
    assert again.returncode == 0, again.stderr[-3000:]
    pd.testing.assert_frame_equal(pd.read_parquet(out / "runs.parquet"), table)
    assert sorted(p.name for p in (out / "figures").glob("*.png")) == figures


def test_analyze_of_a_sweep_dir_reads_its_index(sweep, tmp_path):
    """A Hydra sweep dir holds no runs, only sweep.json naming them (written by the sss launchers)."""
    root, expected = sweep
    sweep_dir = tmp_path / "multirun" / "12-00-00"
    sweep_dir.mkdir(parents=True)
    chosen = sorted(expected)[:2]
    jobs = [{"num": i, "overrides": [], "run_dir": run, "outcome": "done"} for i, run in enumerate(chosen)]
    (sweep_dir / "sweep.json").write_text(json.dumps({"jobs": jobs}))
    result = analyze(f"analyze.input={sweep_dir}", f"analyze.output={tmp_path / 'report'}")
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_parquet(tmp_path / "report" / "runs.parquet")
    assert sorted(table["run_dir"]) == chosen


def test_runs_with_one_sample_per_question_get_no_maj_curve(tmp_path):
    for i, min_p in enumerate((0.1, 0.2)):
        make_run(
            tmp_path / f"r{i}",
            "min_p",
            {"min_p": min_p},
            0,
            metrics={"accuracy": 0.5, "overall_correct": 0.5, "maj@1": 0.5, "pass@1": 0.5},
        )
    result = analyze(f"analyze.input={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    figures = [p.name for p in (tmp_path / "analysis" / "figures").glob("*.png")]
    assert figures == ["accuracy_vs_min_p__min_p.png"]
    report = (tmp_path / "analysis" / "report.md").read_text()
    assert "maj@k curves: 2 of 2 finished runs have no curve" in report


@pytest.mark.parametrize(
    "make_input, words",
    [
        (lambda tmp: None, ["analyze.input", "null"]),  # as the YAML writes it
        (lambda tmp: tmp / "missing", ["analyze.input", "existing directory"]),
        (lambda tmp: tmp, ["analyze.input", "at least one run"]),
    ],
)
def test_bad_input_stops_with_a_clear_error(tmp_path, make_input, words):
    source = make_input(tmp_path)
    result = analyze(*([f"analyze.input={source}"] if source else []))
    assert result.returncode == 2
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: ")
    for word in words:
        assert word in error
    assert not (tmp_path / "analysis").exists()


def dead_pid() -> int:
    """The id of a process that has ended (a `running` manifest left by kill -9 names one)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_analyze_finishes_and_lists_stale_interrupted_and_unreadable_runs(tmp_path):
    from sss.runs.layout import write_json

    root = tmp_path / "outputs"
    make_run(root / "good", "min_p", {"min_p": 0.1}, 0, metrics={"accuracy": 0.5})
    stale = make_run(root / "stale", "min_p", {"min_p": 0.2}, 0, status="running")
    manifest = json.loads((stale / "manifest.json").read_text())
    write_json(stale / "manifest.json", {**manifest, "pid": dead_pid()})
    stopped = make_run(root / "stopped", "min_p", {"min_p": 0.3}, 0, status="running")
    write_json(stopped / "manifest.json", {**manifest, "status": "interrupted", "error": "SystemExit: 143"})
    torn_manifest = make_run(root / "torn_manifest", "min_p", {"min_p": 0.4}, 0, metrics={"accuracy": 1.0})
    (torn_manifest / "manifest.json").write_text('{"status": "do')
    torn_metrics = make_run(root / "torn_metrics", "min_p", {"min_p": 0.5}, 0, metrics={"accuracy": 1.0})
    (torn_metrics / "metrics.json").write_text("[1, 2")
    torn_samples = make_run(root / "torn_samples", "min_p", {"min_p": 0.6}, 0, metrics={"accuracy": 1.0})
    pd.DataFrame({"x": range(1000)}).to_parquet(torn_samples / "samples.parquet")
    data = (torn_samples / "samples.parquet").read_bytes()
    (torn_samples / "samples.parquet").write_bytes(data[: len(data) // 2])

    result = analyze(f"analyze.input={root}")
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_parquet(root / "analysis" / "runs.parquet").set_index("run_dir")
    status = {Path(run).name: s for run, s in table["status"].items()}
    assert status == {
        "good": "done",
        "stale": "stale",
        "stopped": "interrupted",
        "torn_manifest": "unreadable",
        "torn_metrics": "unreadable",
        "torn_samples": "unreadable",
    }
    errors = {Path(run).name: e for run, e in table["error"].items()}
    assert "ended without finishing" in errors["stale"]
    assert "manifest.json" in errors["torn_manifest"] and "metrics.json" in errors["torn_metrics"]
    assert "samples.parquet is truncated" in errors["torn_samples"]
    assert table["accuracy"].notna().sum() == 1
    report = (root / "analysis" / "report.md").read_text()
    assert "6 runs: 1 done, 0 failed, 1 interrupted, 1 stale, 3 unreadable." in report
    for name in ("stale", "torn_manifest", "torn_metrics", "torn_samples", "stopped"):
        assert f"/{name}`" in report


def test_analyze_with_no_finished_run_still_writes_the_report(tmp_path):
    root = tmp_path / "outputs"
    make_run(root / "a", "min_p", {"min_p": 0.2}, 0, status="failed", error="ValueError: boom")
    result = analyze(f"analyze.input={root}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ValueError: boom" in (root / "analysis" / "report.md").read_text()
