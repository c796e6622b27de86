"""Shared fixtures: the repo root, a launcher for launch.py, the embedded model folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Real benchmark data for tests (GSM8K, BBH; MIT): the workspace's shared folder beside the
# clone, or $SSS_TEST_DATA. The product never reads it.
SHARED_DATA = Path(os.environ.get("SSS_TEST_DATA", ROOT.parent / "shared" / "data"))


def shared_data(*parts: str) -> Path:
    """A path under SHARED_DATA, or skip the test saying what is missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"test data {path} is missing (set SSS_TEST_DATA to a folder with gsm8k/ and bbh/)")
    return path


def launch(*overrides: str, cwd: Path = ROOT, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run `python launch.py <overrides>` as a user would, offline."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return subprocess.run(
        [sys.executable, str(ROOT / "launch.py"), *overrides],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_refused(result: subprocess.CompletedProcess, *words: str) -> None:
    """launch.py stopped on a bad setting before any model loaded: exit 2, one `error:` line
    naming what was wrong, and no run directory started."""
    assert result.returncode == 2, result.stderr[-2000:]
    assert "error: " in result.stderr
    for word in words:
        assert word in result.stderr, (word, result.stderr[-2000:])
    assert "Loading weights" not in result.stderr and "run directory" not in result.stdout


@pytest.fixture(scope="session")
def smollm2_path() -> str:
    from sss.models import resolve_model_path

    return resolve_model_path("embedded:smollm2-135m-instruct")


# Tests never reach the HF hub: every model and data file they use is local.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
