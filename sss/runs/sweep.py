"""A sweep's jobs before and after they run: what to submit, what to skip, how each ended.

Used by the sss launchers (hydra_plugins/sss_launchers) in the launching process:

- `plan`: compose and validate every job's config before anything is submitted (a bad value
  stops the whole sweep with `error: ...`, exit 2, nothing queued), and find each evaluate job's
  run directory, so that runs with DONE are skipped without submitting a job or loading a model;
- `record_death`: a job that died without a result (killed, out of memory, cancelled, timed
  out for good) cannot update its own manifest; the launcher writes the failure there;
- `write_index` / `print_summary`: `sweep.json` in Hydra's sweep directory lists every job with
  its run directory and outcome (job=analyze reads it), and the console gets the same as a table.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .discovery import SWEEP_INDEX
from .layout import RunDir, write_json
from .manifest import now

# Outcomes: skipped (DONE before the sweep; not submitted), done, failed (the run raised:
# its manifest says why), died (the job ended without a result: killed, out of memory, ...).
FAILED = ("failed", "died")


@dataclass
class SweepJob:
    num: int
    overrides: list[str]
    run_dir: str | None = None  # evaluate jobs; None for jobs without a run directory
    outcome: str = "pending"
    error: str | None = None
    job_id: str | None = None  # the scheduler's id (SLURM job id, local pid)
    log: str | None = None  # the job's stderr file
    extra: dict[str, Any] = field(default_factory=dict)


class SweepConfigError(ValueError):
    """Some jobs of a sweep have invalid configs; nothing was submitted."""


def plan(
    config_loader: Any, base_config: Any, job_overrides: Sequence[Sequence[str]], first_num: int
) -> list[SweepJob]:
    """Validate every job's config and mark the ones whose run is already DONE."""
    from hydra.errors import HydraException

    from sss.config import is_config_error, validate
    from sss.runs.layout import run_dir_for
    from sss.schema import config_error

    jobs, errors = [], []
    for offset, overrides in enumerate(job_overrides):
        job = SweepJob(num=first_num + offset, overrides=list(overrides))
        try:
            try:
                config = config_loader.load_sweep_config(base_config, list(overrides))
            except HydraException as exc:  # a value of the wrong type, an unknown key
                raise config_error(exc, overrides) from exc
            settings = validate(config)
        except Exception as exc:
            if not is_config_error(exc):
                raise
            errors.append(f"job #{job.num} ({' '.join(overrides)}): {exc}")
            continue
        if settings.config["job"]["name"] == "evaluate":
            run = run_dir_for(settings.config, settings.spec)
            job.run_dir = str(run.path.absolute())  # sweep.json is read from anywhere
            if run.is_done() and not settings.config.get("force"):
                job.outcome = "skipped"
        jobs.append(job)
    if errors:
        raise SweepConfigError("\n".join(errors))
    return jobs


def outcome_of_run(job: SweepJob) -> str:
    """After a job returned normally: what its run's manifest says (done for a finished run)."""
    if job.run_dir is None:
        return "done"
    run = RunDir(Path(job.run_dir))
    if run.is_done():
        return "done"
    try:
        return json.loads(run.manifest.read_text()).get("status", "failed")
    except (OSError, ValueError):
        return "failed"


def record_death(job: SweepJob) -> None:
    """Write a died job's end into its run's manifest, where the run left it unfinished."""
    if job.run_dir is None:
        return
    run = RunDir(Path(job.run_dir))
    try:
        manifest = json.loads(run.manifest.read_text())
    except (OSError, ValueError):
        return  # the job died before the run started: there is no manifest to update
    if run.is_done() or manifest.get("status") not in ("running", "interrupted"):
        return
    manifest.update(
        status="failed", finished=now(), error=job.error, died={"job_id": job.job_id, "log": job.log, **job.extra}
    )
    write_json(run.manifest, manifest)


def write_index(sweep_dir: Path, jobs: list[SweepJob]) -> Path:
    path = Path(sweep_dir) / SWEEP_INDEX
    write_json(path, {"written": now(), "jobs": [asdict(job) for job in jobs]})
    return path


def print_summary(jobs: list[SweepJob], index: Path) -> None:
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job.outcome] = counts.get(job.outcome, 0) + 1
    print(f"\nsweep: {len(jobs)} jobs: " + ", ".join(f"{n} {o}" for o, n in sorted(counts.items())))
    for job in jobs:
        where = job.run_dir or ""
        print(f"  #{job.num:<4} {job.outcome:<8} {' '.join(job.overrides)}  {where}")
        if job.outcome in FAILED:
            print(f"         {job.error}" + (f"\n         log: {job.log}" if job.log else ""))
    print(f"index: {index}", flush=True)
