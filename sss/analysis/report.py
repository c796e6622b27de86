"""report.md: what was analysed, how the runs ended, the results, and the figures."""

from __future__ import annotations

from datetime import datetime, UTC
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


def write_report(
    frame: pd.DataFrame,
    source: Path,
    folder: Path,
    metric: str,
    figures: list[Path],
    notes: list[str],
    sections: list[str] | None = None,
) -> Path:
    counts = frame["status"].value_counts()
    params = param_columns(frame)
    metrics = metric_columns(frame)
    other = sorted(set(counts.index) - set(STATUSES))
    lines = [
        "# Sweep analysis",
        "",
        f"Input: `{source}`  ",
        f"Written: {datetime.now(UTC).isoformat(timespec='seconds')}",
        "",
        f"{len(frame)} runs: "
        + ", ".join(f"{int(counts.get(s, 0))} {s}" for s in STATUSES if s in ("done", "failed") or counts.get(s, 0))
        + "".join(f", {int(counts[s])} {s}" for s in other)
        + ".",
        "Runs without results are listed below with the reason; a re-launch of their config "
        "redoes failed, interrupted and stale ones (stale: the process ended without a word, "
        "e.g. kill -9).",
        "",
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
            means = (
                shown.groupby(keys, dropna=False)[metric].agg(["mean", "count"]).reset_index().dropna(subset=["mean"])
            )
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

    lines += sections or []
    lines += ["## Figures", ""]
    lines += [f"![{path.stem}](figures/{path.name})" for path in figures] or ["(none)"]
    lines += [""] + [f"- {note}" for note in notes] + [""]
    path = folder / "report.md"
    path.write_text("\n".join(lines))
    return path


def trace_section(traces, options, source: Path) -> list[str]:
    """The "Token traces" section: what was counted, a summary per run, and the runs whose
    traces were missing or broken (sss.analysis.traces.TraceResult)."""
    if not (traces.analysed or traces.errors):
        if not traces.without:
            return []
        return [
            "## Token traces",
            "",
            f"None of the {len(traces.without)} finished runs has tokens.parquet "
            "(launch with logging=tokens to record per-token traces).",
            "",
        ]
    scope = "only the steps before the answer phrase" if options.until_answer else "every step"
    lines = [
        "## Token traces",
        "",
        f"Low-confidence step: raw p_max < {options.low_conf:g}. Low-probability token: the "
        f"chosen token's raw probability < {options.sampled_prob:g}. Counted: {scope}. "
        "Tables beside this report (Parquet and CSV): low_conf_tokens, sampled_rank, "
        "max_rank_bins, conditioned_vote, conditioned_vote_questions, low_prob_tokens, "
        "low_prob_rank; and trace_samples.parquet, one row per sample (docs/traces.md).",
        "",
        f"{len(traces.analysed)} runs analysed, {len(traces.without)} finished runs without "
        f"tokens.parquet skipped, {len(traces.errors)} with unreadable traces.",
        "",
    ]
    if traces.analysed:
        samples = traces.samples
        by_run = samples.groupby("run_dir", sort=False)
        summary = pd.DataFrame(
            {
                "samples": by_run.size(),
                "accuracy": by_run["correct"].mean(),
                "low_conf/sample": by_run["low_conf_events"].mean(),
                "acc. 0 low_conf": by_run.apply(
                    lambda g: g.loc[g["low_conf_events"] == 0, "correct"].mean(), include_groups=False
                ),
                "acc. >=1 low_conf": by_run.apply(
                    lambda g: g.loc[g["low_conf_events"] > 0, "correct"].mean(), include_groups=False
                ),
                "low_prob/sample": by_run["low_prob_events"].mean(),
            }
        ).reset_index()
        vote = traces.tables["conditioned_vote"][["run_dir", "plain_vote", "conditioned_vote", "kept"]]
        summary = summary.merge(vote, on="run_dir", how="left")
        ident = samples.drop_duplicates("run_dir")[["run_dir", "task", "model", "sampler", "params", "seed"]]
        summary = ident.merge(summary, on="run_dir")
        summary["kept"] = (summary["kept"] / summary["samples"]).map(lambda x: f"{x:.0%}")
        summary = summary.rename(columns={"kept": "vote kept"}).drop(columns="run_dir")
        rule = traces.tables["conditioned_vote"]["rule"].iloc[0]
        lines += [f"Conditioned vote: {rule}.", ""]
        lines += _markdown_table(summary) + [""]
    if traces.errors:
        lines += ["Runs whose traces could not be analysed (their other results are above):", ""]
        lines += [f"- {error}" for error in traces.errors.values()] + [""]
    return lines
