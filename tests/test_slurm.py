"""Sweeps on a real single-node SLURM (slurmctld + slurmd + slurmdbd on loopback).

The module starts the cluster with ../shared/tools/slurm-single-node.sh (beside the clone, as
on the CI machines; SSS_SLURM_SCRIPT points elsewhere) and stops it afterwards, unless it was
already running. Where that cannot happen (no script, not root, the `slurm` extra missing, the
daemons do not come up) every test here is skipped with the reason.

Nothing is faked: jobs are submitted by `python launch.py -m hydra/launcher=slurm ...`, killed
with `scancel`, and preempted with the signal SLURM sends before preempting or timing out a job
(`scancel --signal=USR2`, what submitit's `--signal=USR2@<delay>` asks for), after which
submitit checkpoints and requeues the job through SLURM itself.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT, launch

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

SCRIPT = Path(os.environ.get("SSS_SLURM_SCRIPT", ROOT.parent / "shared" / "tools" / "slurm-single-node.sh"))
# Small runs, one CPU each so that two jobs run side by side on a 2-core machine.
SWEEP = [
    "-m",
    "hydra/launcher=slurm",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=4",
    "sampler=min_p",
    "task.limit=1",
    "task.max_gen_toks=24",
]
WAIT_S = 900


def _cluster_is_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    probe = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    return probe.returncode == 0 and any(state in probe.stdout for state in ("idle", "mix", "alloc"))


def _why_not() -> str | None:
    try:
        import hydra_plugins.hydra_submitit_launcher  # noqa: F401
        import submitit  # noqa: F401
    except ImportError:
        return "the `slurm` extra (submitit, hydra-submitit-launcher) is not installed"
    if _cluster_is_up():
        return None
    if not SCRIPT.is_file():
        return f"no SLURM here and no set-up script at {SCRIPT} (set SSS_SLURM_SCRIPT)"
    if os.geteuid() != 0:
        return f"{SCRIPT.name} must run as root to start SLURM"
    return None


@pytest.fixture(scope="module")
def slurm():
    reason = _why_not()
    if reason:
        pytest.skip(f"SLURM tests skipped: {reason}")
    started = not _cluster_is_up()
    if started:
        up = subprocess.run(["bash", str(SCRIPT), "up"], capture_output=True, text=True, timeout=900)
        if up.returncode != 0 or not _cluster_is_up():
            subprocess.run(["bash", str(SCRIPT), "down"], capture_output=True, timeout=300)
            pytest.skip(f"SLURM tests skipped: SLURM did not start: {up.stderr[-1500:]}")
    yield
    if started:
        subprocess.run(["bash", str(SCRIPT), "down"], capture_output=True, timeout=300)


def start(*overrides: str) -> subprocess.Popen:
    """launch.py in the background, as conftest.launch runs it."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return subprocess.Popen(
        [sys.executable, str(ROOT / "launch.py"), *overrides],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(what: str, condition, timeout: float = WAIT_S, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"launch.py ended while waiting for {what}: {out[-2000:]}{err[-2000:]}")
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def sweep_indexes(root: Path) -> list[Path]:
    return sorted(root.glob(".hydra/multirun/*/*/sweep.json"), key=lambda p: p.stat().st_mtime_ns)


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def manifests(root: Path) -> dict[Path, dict]:
    return {p.parent: read(p) for p in root.rglob("manifest.json") if ".hydra" not in p.parts}


def sacct_states(job_ids: list[str]) -> list[str]:
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-o", "State", "-j", ",".join(job_ids)], capture_output=True, text=True, timeout=60
    ).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def test_sweep_runs_every_job_relaunch_skips_all_and_analyze_reads_it(slurm, tmp_path):
    # the weightless engine: this test is about the sweep, not the model
    args = [*SWEEP, "engine=dummy", "sampler.min_p=0.05,0.3", f"output_root={tmp_path}"]
    first = launch(*args, timeout=WAIT_S)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
    assert "sweep: 2 jobs: 2 done" in first.stdout

    runs = manifests(tmp_path)
    assert len(runs) == 2
    assert sorted(m["run"]["sampler_params"]["min_p"] for m in runs.values()) == [0.05, 0.3]
    job_ids = []
    for run, manifest in runs.items():
        assert manifest["status"] == "done" and (run / "DONE").is_file()
        job_ids.append(manifest["scheduler"]["slurm_job_id"])
    # one SLURM job array, both tasks COMPLETED according to SLURM's own accounting
    assert len({m["scheduler"]["slurm_array_job_id"] for m in runs.values()}) == 1
    # (slurmdbd records job ends a moment after the jobs' results are on disk)
    wait_for("sacct to show both COMPLETED", lambda: sacct_states(job_ids) == ["COMPLETED", "COMPLETED"], timeout=120)
    (sweep_index,) = sweep_indexes(tmp_path)
    sweep_dir = sweep_index.parent

    stamps = {run: ((run / "DONE").stat().st_mtime_ns, m["finished"]) for run, m in runs.items()}
    again = launch(*args, timeout=WAIT_S)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "sweep: 2 jobs: 2 skipped" in again.stdout
    # nothing was queued: no submitit folder in the second sweep, no new model load
    second = sweep_indexes(tmp_path)[-1].parent
    assert second != sweep_dir and not (second / ".submitit").exists()
    assert stamps == {run: ((run / "DONE").stat().st_mtime_ns, m["finished"]) for run, m in manifests(tmp_path).items()}

    result = launch("job=analyze", f"analyze.input={sweep_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_parquet(sweep_dir / "analysis" / "runs.parquet")
    assert sorted(table["param.min_p"]) == [0.05, 0.3] and set(table["status"]) == {"done"}
    for _, row in table.iterrows():
        metrics = read(Path(row["run_dir"]) / "metrics.json")["metrics"]
        assert row["accuracy"] == pytest.approx(metrics["accuracy"])
    assert (sweep_dir / "analysis" / "figures" / "accuracy_vs_min_p__min_p.png").is_file()
    assert "2 runs: 2 done, 0 failed." in (sweep_dir / "analysis" / "report.md").read_text()


def test_killed_job_is_redone_on_relaunch_and_a_preempted_one_is_requeued(slurm, tmp_path):
    args = [*SWEEP, "sampler.min_p=0.1,0.2", f"output_root={tmp_path}"]

    def job_of(index_path: Path, min_p: str) -> dict | None:
        if not index_path.is_file():
            return None
        for job in read(index_path)["jobs"]:
            if f"sampler.min_p={min_p}" in job["overrides"] and job.get("job_id"):
                return job
        return None

    def running(run_dir: str, job_id: str):
        path = Path(run_dir) / "manifest.json"
        if not path.is_file():
            return None
        manifest = read(path)
        scheduler = manifest.get("scheduler", {})
        # an array task is known as <array id>_<task>; a sweep of one job is a plain job
        ids = {
            scheduler.get("slurm_job_id"),
            f"{scheduler.get('slurm_array_job_id')}_{scheduler.get('slurm_array_task_id')}",
        }
        return manifest if manifest["status"] == "running" and job_id in ids else None

    # 1. kill one job mid-run: the other finishes, the killed one is recorded as such
    proc = start(*args)
    index = wait_for("the sweep index", lambda: (sweep_indexes(tmp_path) or [None])[-1], proc=proc)
    victim = wait_for("job ids", lambda: job_of(index, "0.2"), proc=proc)
    wait_for("the run to start", lambda: running(victim["run_dir"], victim["job_id"]), proc=proc)
    subprocess.run(["scancel", victim["job_id"]], check=True, timeout=60)
    out, err = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == 1, out[-2000:] + err[-3000:]
    assert "sweep: 2 jobs: 1 died, 1 done" in out
    victim_run = Path(victim["run_dir"])
    killed = read(victim_run / "manifest.json")
    assert killed["status"] == "failed" and not (victim_run / "DONE").exists()
    assert killed["died"]["job_id"] == victim["job_id"] and "CANCELLED" in killed["died"]["state"]
    (survivor,) = [run for run in manifests(tmp_path) if run != victim_run]
    assert (survivor / "DONE").is_file()
    stamp = ((survivor / "DONE").stat().st_mtime_ns, read(survivor / "manifest.json")["finished"])

    # 2. re-launch: only the killed run is queued; preempt it while it runs; submitit
    #    requeues it through SLURM and the requeued job redoes the partial run to the end
    proc = start(*args)
    index = wait_for(
        "a second sweep index",
        lambda: next((p for p in sweep_indexes(tmp_path) if p.parent != index.parent), None),
        proc=proc,
    )
    redo = wait_for("the job id", lambda: job_of(index, "0.2"), proc=proc)
    assert job_of(index, "0.1") is None  # the finished run was not queued
    wait_for("the redo to start", lambda: running(redo["run_dir"], redo["job_id"]), proc=proc)
    subprocess.run(["scancel", "--signal=USR2", redo["job_id"]], check=True, timeout=60)
    out, err = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == 0, out[-2000:] + err[-3000:]
    assert "sweep: 2 jobs: 1 done, 1 skipped" in out

    redone = read(victim_run / "manifest.json")
    assert redone["status"] == "done" and (victim_run / "DONE").is_file()
    assert redone["scheduler"]["slurm_restart_count"] == "1"  # the second attempt of the job
    # submitit's own account of it, in the job's logs (stderr: warnings, stdout: info)
    err_log = Path(redo["log"])
    log = err_log.read_text() + err_log.with_name(err_log.name.replace("_log.err", "_log.out")).read_text()
    assert "this job is preempted" in log and "Requeued job" in log
    assert stamp == ((survivor / "DONE").stat().st_mtime_ns, read(survivor / "manifest.json")["finished"])
