"""report.md: what was analysed, how the runs ended, the results, and the figures."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from .table import STATUSES, metric_columns, param_columns, params_label, varying_settings

MAX_ERROR_CHARS = 200


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _markdown_table(frame: pd.DataFrame) -> list[str]:
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return lines


def write_report(frame: pd.DataFrame, source: Path, folder: Path, metric: str,
                 figures: list[Path], notes: list[str]) -> Path:
    counts = frame["status"].value_counts()
    params = param_columns(frame)
    metrics = metric_columns(frame)
    other = sorted(set(counts.index) - set(STATUSES))
    lines = [
        "# Sweep analysis", "",
        f"Input: `{source}`  ",
        f"Written: {datetime.now(timezone.utc).isoformat(timespec='seconds')}", "",
        f"{len(frame)} runs: " + ", ".join(f"{int(counts.get(s, 0))} {s}" for s in STATUSES
                                           if s in ("done", "failed") or counts.get(s, 0))
        + "".join(f", {int(counts[s])} {s}" for s in other) + ".",
        "Runs without results are listed below with the reason; a re-launch of their config "
        "redoes failed, interrupted and stale ones (stale: the process ended without a word, "
        "e.g. kill -9).", "",
    ]

    done = frame[frame["status"] == "done"]
    if not done.empty:
        lines += ["## Results", ""]
        shown = done.assign(params=[params_label(row, params) for _, row in done.iterrows()])
        settings = varying_settings(done)  # e.g. two task.limit values: different runs
        columns = ["task", "model", "sampler", "params", *settings, "seed", *metrics]
        lines += _markdown_table(shown[columns]) + [""]
        if metric in done.columns and done[metric].notna().any():
            lines += [f"## Best setting per task and model (by mean {metric} over seeds)", ""]
            keys = ["task", "model", "sampler", "params", *settings]
            means = (shown.groupby(keys, dropna=False)[metric].agg(["mean", "count"]).reset_index()
                     .dropna(subset=["mean"]))
            best = means.loc[means.groupby(["task", "model"])["mean"].idxmax()]
            best = best.rename(columns={"mean": metric, "count": "seeds"})
            lines += _markdown_table(best[[*keys, metric, "seeds"]]) + [""]

    unfinished = frame[frame["status"] != "done"]
    if not unfinished.empty:
        lines += ["## Runs without results", ""]
        for _, row in unfinished.iterrows():
            error = _cell(row.get("error"))[:MAX_ERROR_CHARS]
            lines.append(f"- {row['status']}: `{row['run_dir']}`" + (f": {error}" if error else ""))
        lines.append("")

    lines += ["## Figures", ""]
    lines += [f"![{path.stem}](figures/{path.name})" for path in figures] or ["(none)"]
    lines += [""] + [f"- {note}" for note in notes] + [""]
    path = folder / "report.md"
    path.write_text("\n".join(lines))
    return path
