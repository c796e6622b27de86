"""Finding runs under a directory: by their manifests, never by their directory names.

A run is a directory holding a `manifest.json`. A sweep launched through the sss launchers
(`hydra/launcher=local|slurm`) also leaves a `sweep.json` in Hydra's sweep directory that
lists the run directory of every job, so `<output_root>/.hydra/multirun/<date>/<time>` names
exactly the runs of that sweep even though they live elsewhere.
"""

from __future__ import annotations

import json
from pathlib import Path

MANIFEST = "manifest.json"
SWEEP_INDEX = "sweep.json"


def find_runs(root: Path) -> list[Path]:
    """Every run directory below `root` (itself included) or listed by a sweep index there,
    each once, in a stable order."""
    root = Path(root)
    found: dict[Path, None] = {}
    if root.is_dir():
        for manifest in sorted(root.rglob(MANIFEST)):
            # a directory starting with "." is a force=true redo in progress (sss.runs.redo)
            # or Hydra's logs, never a run of its own
            if not any(part.startswith(".") for part in manifest.parent.relative_to(root).parts):
                found[manifest.parent.resolve()] = None
        for index in sorted(root.rglob(SWEEP_INDEX)):
            for run in runs_in_index(index):
                found[run.resolve()] = None
    return sorted(found)


def runs_in_index(index: Path) -> list[Path]:
    """The run directories a sweep index lists that exist and hold a manifest."""
    try:
        jobs = json.loads(index.read_text()).get("jobs", [])
    except (OSError, ValueError, AttributeError):
        return []
    out = []
    for job in jobs:
        run = job.get("run_dir") if isinstance(job, dict) else None
        if run and (Path(run) / MANIFEST).is_file():
            out.append(Path(run))
    return out
