"""launch.py end to end as a user runs it: run dirs, skip, metrics, repeats, failures.

The job's own behaviour runs on `engine=dummy` (no weights, seconds); the embedded model runs
where the model matters (a real run, and a kill that must land while the model works)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import launch

SMALL = ["task.limit=4", "task.max_gen_toks=40"]
DUMMY = "engine=dummy"


def run_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("manifest.json") if ".hydra" not in p.parts)


def check_run(run: Path) -> tuple[dict, pd.DataFrame]:
    for name in ("config.yaml", "manifest.json", "metrics.json", "samples.parquet", "DONE"):
        assert (run / name).is_file(), name
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "done"
    assert {"torch", "transformers", "lm_eval", "python"} <= set(manifest["versions"])
    assert manifest["timings_s"]["total"] > 0 and manifest["host"]
    metrics = json.loads((run / "metrics.json").read_text())
    samples = pd.read_parquet(run / "samples.parquet")
    assert {"doc_id", "repeat", "response", "answer", "target", "correct", "seed"} <= set(samples.columns)
    # metrics agree with the samples they came from, and with lm-eval's own aggregation
    first = samples[samples["repeat"] == 0]
    assert metrics["metrics"]["accuracy"] == pytest.approx(first["correct"].mean())
    assert metrics["metrics"]["overall_correct"] == pytest.approx(samples["correct"].mean())
    lm_eval = metrics["lm_eval"]["results"]["sss_arith"]  # lm-eval's results, per lm-eval task
    assert lm_eval["exact_match,answers"] == pytest.approx(metrics["metrics"]["accuracy"])
    assert lm_eval["overall_correct,answers"] == pytest.approx(metrics["metrics"]["overall_correct"])
    # the answer column is what the task's extractor makes of the response
    from sss.evaluation.answers import number_after_answer_is

    assert list(samples["answer"]) == [number_after_answer_is(r) for r in samples["response"]]
    return metrics, samples


@pytest.mark.slow
def test_min_p_run_writes_a_complete_run_dir_and_relaunch_skips(tmp_path):
    args = ["sampler=min_p", "sampler.min_p=0.1", *SMALL, f"output_root={tmp_path}"]
    first = launch(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    (run,) = run_dirs(tmp_path)
    assert run.relative_to(tmp_path).parts[:3] == ("arith", "smollm2-135m-instruct", "min_p")
    assert run.name.startswith("min_p-0.1__seed-0__")
    metrics, samples = check_run(run)
    assert len(samples) == 4 and metrics["n_docs"] == 4
    assert "accuracy" in first.stdout  # the results table
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["sampler"]["min_p"] == 0.1 and config["task"]["max_gen_toks"] == 40

    done_mtime = (run / "DONE").stat().st_mtime_ns
    again = launch(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "skipped" in again.stdout and "Loading weights" not in again.stderr
    assert (run / "DONE").stat().st_mtime_ns == done_mtime
    assert run_dirs(tmp_path) == [run]

    # a different setting is a different run, never a skip
    other = launch(*args[:-1], "task.limit=3", f"output_root={tmp_path}")
    assert other.returncode == 0 and "skipped" not in other.stdout
    assert len(run_dirs(tmp_path)) == 2


def test_greedy_threshold_with_repeats_has_one_seed_per_repeat(tmp_path):
    result = launch(DUMMY, "sampler=greedy_threshold", "task.repeats=3", *SMALL, f"output_root={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = run_dirs(tmp_path)
    assert run.relative_to(tmp_path).parts[2] == "greedy_threshold"
    metrics, samples = check_run(run)
    assert len(samples) == 12 and sorted(samples["repeat"].unique()) == [0, 1, 2]
    assert samples["seed"].nunique() == 12


def test_partial_run_is_redone(tmp_path):
    args = [DUMMY, "sampler=greedy", "task.limit=2", "task.max_gen_toks=16", f"output_root={tmp_path}"]
    assert launch(*args).returncode == 0
    (run,) = run_dirs(tmp_path)
    (run / "DONE").unlink()
    (run / "samples.parquet").write_text("torn")
    result = launch(*args)
    assert result.returncode == 0 and "skipped" not in result.stdout
    check_run(run)


def test_a_failing_run_records_the_failure(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "no target here"}\n')
    # a file without the fields the task reads is refused before any run starts (issue 14) ...
    result = launch(DUMMY, f"task.data_files={bad}", "task.limit=1", f"output_root={tmp_path / 'out'}")
    assert result.returncode == 2 and "task.data_files" in result.stderr and not run_dirs(tmp_path)
    # ... one whose target datasets cannot load beside the generated exemplars fails in the run
    bad.write_text('{"question": "q", "target": {"a": [1]}}\n')
    result = launch(DUMMY, f"task.data_files={bad}", "task.limit=1", f"output_root={tmp_path / 'out'}")
    assert result.returncode != 0
    (run,) = run_dirs(tmp_path / "out")
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["error"]
    assert not (run / "DONE").exists()


@pytest.mark.slow
def test_a_killed_run_is_recorded_as_interrupted_and_redone(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import ROOT

    args = ["sampler=greedy", "task.limit=2", "task.max_gen_toks=16", f"output_root={tmp_path}"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "launch.py"), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not run_dirs(tmp_path) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    (run,) = run_dirs(tmp_path)
    time.sleep(2)  # inside the run: loading or generating
    proc.send_signal(signal.SIGTERM)  # a plain `kill`, as a user or a scheduler sends it
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode != 0
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "interrupted", (manifest["status"], stderr[-2000:])
    assert "SystemExit" in manifest["error"] and not (run / "DONE").exists()
    again = launch(*args)
    assert again.returncode == 0 and "skipped" not in again.stdout
    check_run(run)
