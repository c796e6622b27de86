"""The launcher presets (hydra/launcher=slurm|local): composition, resources, checks before
anything is queued, and failure isolation with the local launcher (real submitit processes)."""

from __future__ import annotations

import json

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import ROOT, launch

pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="the `slurm` extra is not installed")

from hydra_plugins.sss_launchers import gpu_slot, gpus_per_job  # noqa: E402


def launcher_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides), return_hydra_config=True)
    return cfg.hydra.launcher


@pytest.mark.parametrize("preset, target", [("slurm", "SlurmLauncher"), ("local", "LocalLauncher")])
def test_presets_compose_and_take_command_line_values(preset, target):
    cfg = launcher_cfg(f"hydra/launcher={preset}", "hydra.launcher.timeout_min=30")
    assert cfg._target_ == f"hydra_plugins.sss_launchers.{target}"
    assert cfg.timeout_min == 30
    # the embedded default runs on CPU: no GPU is requested
    assert OmegaConf.select(cfg, "gpus_per_node") is None


def test_slurm_preset_has_the_cluster_knobs():
    cfg = launcher_cfg(
        "hydra/launcher=slurm",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.array_parallelism=8",
        "hydra.launcher.mem_gb=64",
        "hydra.launcher.setup=[module load cuda]",
    )
    assert (cfg.partition, cfg.array_parallelism, cfg.mem_gb) == ("gpu", 8, 64)
    assert list(cfg.setup) == ["module load cuda"] and cfg.max_num_timeout >= 1
    assert cfg.submitit_folder.endswith("/.submitit/%j")


def test_gpu_request_follows_the_engine():
    assert launcher_cfg("hydra/launcher=slurm", "engine.device=cuda").gpus_per_node == 1
    assert launcher_cfg("hydra/launcher=slurm").gpus_per_node is None
    assert launcher_cfg("hydra/launcher=slurm", "engine=dummy").gpus_per_node is None
    assert gpus_per_job("hf", "cpu", 1) is None
    assert gpus_per_job("hf", "cuda:0", 1) == 1


def test_local_runs_side_by_side_get_disjoint_gpus():
    slots = [set(gpu_slot(slot, 2)) for slot in range(4)]
    assert set().union(*slots) == set(range(8)) and sum(map(len, slots)) == 8


def test_a_bad_value_anywhere_in_the_sweep_stops_it_before_anything_runs(tmp_path):
    result = launch(
        "-m", "hydra/launcher=local", "sampler=min_p", "sampler.min_p=0.1,1.5", f"output_root={tmp_path}", timeout=300
    )
    assert result.returncode == 2
    assert "error: job #1 (sampler=min_p sampler.min_p=1.5" in result.stderr
    assert "0 <= min_p <= 1" in result.stderr and "nothing was submitted" in result.stderr
    assert not list(tmp_path.rglob(".submitit")) and not list(tmp_path.rglob("manifest.json"))


def test_local_launcher_a_failing_run_never_stops_the_others(tmp_path):
    """One run has broken data, the other is fine: the good one finishes, the bad one is
    recorded as failed in its manifest, the sweep exits 1 with a summary; a re-launch skips
    the finished run and redoes the failed one."""
    bad = tmp_path / "bad.jsonl"
    # passes the checks before the run (fields present) and fails in it: datasets cannot load a
    # struct target beside the generated exemplars' text ones
    bad.write_text('{"question": "q", "target": {"a": [1]}}\n')
    out = tmp_path / "out"
    args = [
        "-m",
        "hydra/launcher=local",
        "engine=dummy",
        "sampler=greedy",
        "task.limit=2",
        "task.max_gen_toks=16",
        f"task.data_files={bad},null",
        f"output_root={out}",
    ]
    first = launch(*args)
    assert first.returncode == 1, first.stderr[-3000:]
    assert "sweep: 2 jobs: 1 done, 1 failed" in first.stdout
    manifests = {p.parent: json.loads(p.read_text()) for p in out.rglob("manifest.json")}
    statuses = sorted(m["status"] for m in manifests.values())
    assert statuses == ["done", "failed"]
    failed_run = next(run for run, m in manifests.items() if m["status"] == "failed")
    done_run = next(run for run, m in manifests.items() if m["status"] == "done")
    assert manifests[failed_run]["error"] and (done_run / "DONE").is_file()
    assert manifests[done_run]["scheduler"]["submitit_local_job_id"]
    index = json.loads(next(out.rglob("sweep.json")).read_text())
    assert sorted(job["outcome"] for job in index["jobs"]) == ["done", "failed"]

    done_mtime = (done_run / "DONE").stat().st_mtime_ns
    again = launch(*args)
    assert again.returncode == 1
    assert "sweep: 2 jobs: 1 failed, 1 skipped" in again.stdout
    assert (done_run / "DONE").stat().st_mtime_ns == done_mtime
    # the failed run was tried again by a new process, not skipped
    retried = json.loads((failed_run / "manifest.json").read_text())
    assert retried["status"] == "failed" and retried["pid"] != manifests[failed_run]["pid"]
