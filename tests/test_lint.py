"""Lint and format are part of the tests: `ruff check` and `ruff format --check` over the repo
(settings in pyproject.toml), so CI, which runs the tests, fails on either."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_ruff(command):
    proc = subprocess.run([sys.executable, "-m", "ruff", *command, "."], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, (
        f"ruff {' '.join(command)} failed (fix with: ruff check --fix . && ruff format .):\n"
        + proc.stdout[-4000:]
        + proc.stderr[-2000:]
    )
