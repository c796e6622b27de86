"""Where a run lives, and the files in it.

    <output_root>/<task>/<model>/<sampler>/<params>__seed-<seed>__<hash>/
        config.yaml  manifest.json  metrics.json  samples.parquet  DONE

`<sampler>` joins the enabled rules ("min_p+greedy_threshold"), `<params>` their
values ("min_p-0.1+greedy_threshold-0.3"), and `<hash>` fingerprints every other
setting that changes results (task limit, repeats, shots, model engine settings,
logging), so two different configs never share a directory and one config
always maps to the same one. Analysis reads manifests, never these names.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from collections.abc import Iterator

if TYPE_CHECKING:  # annotations only: reading run directories must not pull in torch
    from sss.samplers import SamplerSpec

# Keys that do not change what a run computes. `calibration` holds job=calibrate's settings; an
# evaluation reads an artifact only through sampler.calibration (with its content hash).
NOT_RESULT_KEYS = {"output_root", "force", "calibration"}
MAX_PARAMS_LEN = 120


def _fmt(value: Any) -> str:
    if isinstance(value, dict):
        return "-".join(f"{k}{_fmt(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ".".join(_fmt(v) for v in value)
    if isinstance(value, bool):
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def sampler_name(spec: SamplerSpec) -> str:
    rules = spec.enabled()
    return "+".join(rules) if rules else "temperature"


def sampler_params(spec: SamplerSpec) -> str:
    rules = spec.enabled() or {"temperature": spec.temperature}
    text = "+".join(f"{name}-{_fmt(v)}" if _fmt(v) else name for name, v in rules.items())
    return text if len(text) <= MAX_PARAMS_LEN else "params-" + _digest(rules)


def read_json_dict(path: Path) -> dict[str, Any] | None:
    """A JSON object from a file, or None when the file is missing, unreadable or not an object
    (a run's manifest or metrics, a lock's holder: callers say what None means for them)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _digest(data: Any) -> str:
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:8]


def config_fingerprint(config: dict) -> str:
    return _digest({k: v for k, v in config.items() if k not in NOT_RESULT_KEYS})


def _safe(part: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.+" else "_" for c in part)


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def manifest(self) -> Path:
        return self.path / "manifest.json"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.json"

    @property
    def samples(self) -> Path:
        return self.path / "samples.parquet"

    @property
    def done(self) -> Path:
        return self.path / "DONE"

    def is_done(self) -> bool:
        return self.done.is_file()

    def mark_done(self) -> None:
        write_atomic(self.done, "")


def run_dir_for(config: dict, spec: SamplerSpec) -> RunDir:
    root = Path(config["output_root"]).expanduser()
    leaf = f"{sampler_params(spec)}__seed-{config['seed']}__{config_fingerprint(config)}"
    return RunDir(
        root / _safe(config["task"]["name"]) / _safe(config["model"]["name"]) / _safe(sampler_name(spec)) / _safe(leaf)
    )


def file_mode() -> int:
    """The mode a plain `open()` would give a new file here (0644 under the usual umask 022):
    mkstemp's 0600 would make a run's files unreadable to the group that shares the outputs."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_target(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` to write into; on success it replaces `path` in one step
    (readers see the old file or the new, never a torn one), with the mode of a plain new file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, file_mode())
        with open(tmp, "rb") as fh:  # on disk before the rename makes it visible
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, text: str) -> None:
    """Write a text file atomically (see `atomic_target`)."""
    with atomic_target(path) as tmp:
        tmp.write_text(text)


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
