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

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    return RunDir(root / _safe(config["task"]["name"]) / _safe(config["model"]["name"])
                  / _safe(sampler_name(spec)) / _safe(leaf))


def write_atomic(path: Path, text: str) -> None:
    """Write a file so that readers see the old content or the new, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
