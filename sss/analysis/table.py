"""One row per run, read from the run's own files (manifest.json, config.yaml, metrics.json).

Columns: where the run is and how it ended (`run_dir`, `status`, `error`), what it was
(`task`, `model`, `sampler`, `seed`, and one `param.<name>` column per sampler parameter,
nested ones dotted: `param.edt.n`), the task settings that change results (`limit`, `repeats`,
`num_fewshot`, `max_gen_toks`), and every numeric entry of metrics.json's `metrics` as a column
of its own (`accuracy`, `overall_correct`, `maj@4`, `pass@8`, ...). Metrics are read only from
runs with DONE; every other run keeps its row, with the metrics empty and the reason in `error`.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any
from collections.abc import Iterable

import pandas as pd
import yaml

from sss.runs.layout import read_json_dict

PARAM_PREFIX = "param."
ID_COLUMNS = ["task", "model", "sampler", "seed"]
SETTING_KEYS = {
    "limit": ("task", "limit"),
    "repeats": ("task", "repeats"),
    "num_fewshot": ("task", "num_fewshot"),
    "max_gen_toks": ("task", "max_gen_toks"),
    "engine": ("engine", "name"),
}
# status in the table (run_status): DONE decides "done"; otherwise the manifest's word, with a
# `running` whose process is gone read as "stale", and unreadable files as "unreadable".
STATUSES = ("done", "failed", "interrupted", "running", "stale", "unreadable")
K_METRIC = re.compile(r"^(maj|pass)@(\d+)$")


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}", inner, out)
    elif isinstance(value, (list, tuple)):
        out[prefix] = ",".join(str(v) for v in value)  # e.g. calibrated_topk: one cell
    else:
        out[prefix] = value


def metric_set(run: Path, metrics: dict[str, Any], scoring: str = "sss", rescore: bool = False) -> dict[str, Any]:
    """A finished run's metrics of one scoring (`sss` or `paper`): as metrics.json recorded them,
    or recomputed from samples.parquet (`rescore`); empty where the run has no such set."""
    if rescore:
        from sss.evaluation.records import rescore as recompute

        try:
            return (recompute(run, scoring) or {}).get("metrics", {})
        except FileNotFoundError:  # a run without samples.parquet has nothing to rescore
            return {}
    if scoring == "paper":
        return (metrics.get("paper") or {}).get("metrics") or {}
    return metrics.get("metrics") or {}


def _manifest(run: Path) -> tuple[dict[str, Any], str | None]:
    """The manifest and, where it cannot be read, why."""
    path = run / "manifest.json"
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        return {}, f"manifest.json unreadable: {exc.strerror or exc}"
    except ValueError as exc:
        return {}, f"manifest.json is not valid JSON ({exc})"
    if not isinstance(data, dict):
        return {}, "manifest.json is not a JSON object"
    return data, None


def _still_running(run: Path, manifest: dict[str, Any]) -> bool | None:
    """Whether the process of a `running` manifest is alive: checked by pid on this host; on
    another host, by the run's lock (sss.runs.lock), which a live run always holds."""
    from sss.runs.lock import holder_alive, lock_path, read_holder

    alive = holder_alive({"host": manifest.get("host"), "pid": manifest.get("pid")})
    if alive is not None:
        return alive
    holder = read_holder(lock_path(run))
    return holder is not None and holder_alive(holder) is not False


def _samples_problem(run: Path) -> str | None:
    """A finished run's samples.parquet that cannot be read (truncated, corrupt): why."""
    path = run / "samples.parquet"
    if not path.exists():
        return None
    import pyarrow.parquet as pq

    try:
        pq.read_metadata(path)
    except Exception as exc:  # pyarrow raises several kinds for a torn file
        return f"samples.parquet is truncated or corrupt ({type(exc).__name__}: {exc})"
    return None


def run_status(run: Path, manifest: dict[str, Any], manifest_problem: str | None, done: bool) -> tuple[str, str | None]:
    """(status, reason): done, failed, interrupted, running, stale (a `running` manifest whose
    process is gone: killed or crashed), unreadable (a manifest, metrics or samples file that
    cannot be read), or the manifest's own word."""
    if manifest_problem:
        return "unreadable", manifest_problem
    if done:
        metrics = run / "metrics.json"
        if read_json_dict(metrics) is None:
            return "unreadable", (
                "metrics.json is missing" if not metrics.exists() else "metrics.json is not a readable JSON object"
            )
        problem = _samples_problem(run)
        return ("unreadable", problem) if problem else ("done", None)
    word = manifest.get("status") or "unknown"
    if word == "running" and not _still_running(run, manifest):
        return "stale", (
            f"the run's process (pid {manifest.get('pid')} on {manifest.get('host')}) "
            "ended without finishing it (killed or crashed); a re-launch redoes it"
        )
    if word == "interrupted":
        return word, manifest.get("error") or "stopped from outside (a signal) before finishing"
    return word, manifest.get("error")


def run_record(run: Path, scoring: str = "sss", rescore: bool = False) -> dict[str, Any]:
    """The table row of one run directory, with the metrics of `scoring` (see `metric_set`)."""
    manifest, problem = _manifest(run)
    ident = manifest.get("run") if isinstance(manifest.get("run"), dict) else {}
    status, reason = run_status(run, manifest, problem, (run / "DONE").is_file())
    done = status == "done"
    row: dict[str, Any] = {
        "run_dir": str(run),
        "status": status,
        "manifest_status": manifest.get("status") or "unknown",
        "error": reason,
        **{key: ident.get(key) for key in ID_COLUMNS},
        "started": manifest.get("started"),
        "finished": manifest.get("finished"),
        "seconds": (manifest.get("timings_s") or {}).get("total"),
        "host": manifest.get("host"),
        "slurm_job_id": (manifest.get("scheduler") or {}).get("slurm_job_id"),
    }
    params: dict[str, Any] = {}
    sampler_params = ident.get("sampler_params")
    for name, value in (sampler_params if isinstance(sampler_params, dict) else {}).items():
        _flatten(PARAM_PREFIX + name, value, params)
    row.update(params)

    try:
        config = yaml.safe_load((run / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        config = {}
    if not isinstance(config, dict):
        config = {}
    for column, (section, key) in SETTING_KEYS.items():
        part = config.get(section)
        row[column] = part.get(key) if isinstance(part, dict) else None

    metrics = read_json_dict(run / "metrics.json") if done else None
    if metrics:
        row["n_docs"] = metrics.get("n_docs")
        for name, value in metric_set(run, metrics, scoring, rescore).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                row[name if name not in row else f"metric.{name}"] = float(value)
    return row


def runs_table(
    runs: Iterable[Path], progress: bool = False, scoring: str = "sss", rescore: bool = False
) -> pd.DataFrame:
    runs = list(runs)
    if progress:
        from tqdm import tqdm

        runs = tqdm(runs, desc="reading runs", unit="run")
    frame = pd.DataFrame([run_record(Path(run), scoring, rescore) for run in runs])
    if frame.empty:
        return frame
    frame = frame.sort_values(
        ["task", "model", "sampler", *param_columns(frame), "seed"], na_position="last", kind="stable"
    ).reset_index(drop=True)
    # what a run is, then how it scored, then the bookkeeping
    if "n_docs" not in frame.columns:  # no finished run: the column stays, empty
        frame["n_docs"] = None
    first = [
        "task",
        "model",
        "sampler",
        *param_columns(frame),
        "seed",
        *SETTING_KEYS,
        "status",
        "n_docs",
        *metric_columns(frame),
    ]
    return frame[first + [c for c in frame.columns if c not in first]]


def varying_settings(frame: pd.DataFrame) -> list[str]:
    """The task/model settings that differ between runs (shown beside the parameters)."""
    return [c for c in SETTING_KEYS if c in frame.columns and frame[c].nunique(dropna=False) > 1]


def param_columns(frame: pd.DataFrame) -> list[str]:
    return sorted(c for c in frame.columns if c.startswith(PARAM_PREFIX))


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """Metric columns in a readable order: accuracy first, then the others, then maj@k/pass@k by k."""
    known = {
        "run_dir",
        "status",
        "manifest_status",
        "error",
        *ID_COLUMNS,
        "started",
        "finished",
        "seconds",
        "host",
        "slurm_job_id",
        *SETTING_KEYS,
        "n_docs",
    }
    names = [c for c in frame.columns if c not in known and not c.startswith(PARAM_PREFIX)]

    def order(name: str) -> tuple:
        match = K_METRIC.match(name)
        if match:
            return (2, match.group(1), int(match.group(2)))
        return (0 if name == "accuracy" else 1, name, 0)

    return sorted(names, key=order)


def k_columns(frame: pd.DataFrame, kind: str) -> list[tuple[int, str]]:
    """(k, column) of the `maj@k` or `pass@k` columns, by k."""
    found = [(int(m.group(2)), c) for c in frame.columns if (m := K_METRIC.match(c)) and m.group(1) == kind]
    return sorted(found)


def params_label(row: pd.Series, columns: list[str]) -> str:
    """'min_p=0.1, greedy_threshold=0.3' from a row's non-empty parameter cells."""
    parts = []
    for column in columns:
        value = row.get(column)
        if _missing(value):
            continue
        parts.append(f"{column[len(PARAM_PREFIX) :]}={_short(value)}")
    return ", ".join(parts) or "-"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _short(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def write_table(frame: pd.DataFrame, folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    parquet, csv = folder / "runs.parquet", folder / "runs.csv"
    # Parameter cells may mix numbers and text across samplers (e.g. a list written as text);
    # Parquet wants one type per column, so such columns are stored as text.
    stored = frame.copy()
    for column in stored.columns:
        kinds = {type(v) for v in stored[column] if not _missing(v)}
        if len(kinds) > 1 and not kinds <= {int, float}:
            stored[column] = stored[column].map(lambda v: None if _missing(v) else str(v))
    stored.to_parquet(parquet, index=False)
    stored.to_csv(csv, index=False)
    return parquet, csv
