"""`force=true` on a finished run: the new result is computed beside the old one and swapped
in only when it is complete, so a crash during the redo keeps the finished result.

    <parent>/<leaf>/           the run (the old result until the swap)
    <parent>/.<leaf>.new/      the redo, written while the run's lock is held
    <parent>/.<leaf>.old/      the old result, for the instant between the two renames

Directories starting with "." are not runs to job=analyze (sss.runs.discovery). `recover`
(called under the lock before any work) finishes or undoes a swap that a crash interrupted.
"""

from __future__ import annotations

import os
import shutil
import sys

from .layout import RunDir


def staging(run: RunDir) -> RunDir:
    return RunDir(run.path.parent / f".{run.path.name}.new")


def retired(run: RunDir) -> RunDir:
    return RunDir(run.path.parent / f".{run.path.name}.old")


def recover(run: RunDir) -> None:
    """Leave exactly one run directory: the complete one, after a crash at any point of a redo."""
    new, old = staging(run), retired(run)
    if not run.path.exists() and old.path.exists():
        # crashed between the two renames of `swap_in`: the new result if complete, else the old
        source = new if new.is_done() else old
        os.replace(source.path, run.path)
        print(
            f"recovered {run.path} from an interrupted force=true swap "
            f"({'the new result' if source is new else 'the previous result'})",
            file=sys.stderr,
        )
    for leftover in (new, old):
        if leftover.path.exists():
            shutil.rmtree(leftover.path, ignore_errors=True)


def swap_in(run: RunDir, new: RunDir) -> None:
    """Replace the run's directory by the finished `new` one (two renames and a delete)."""
    old = retired(run)
    os.replace(run.path, old.path)
    os.replace(new.path, run.path)
    shutil.rmtree(old.path, ignore_errors=True)
