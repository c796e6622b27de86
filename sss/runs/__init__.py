"""Run directories: layout, manifest, completion marker, skip/resume, discovery."""

from .layout import RunDir, run_dir_for

__all__ = ["RunDir", "run_dir_for"]
