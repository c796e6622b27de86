"""Figures of a runs table (PNG, matplotlib's Agg backend: no display needed).

- `<metric>_vs_<param>__<sampler>.png`: the metric against each hyperparameter that the sweep
  varied for that sampler, one line per (task, model) and per setting of the sampler's other
  varied parameters; the mean over seeds, with the seeds' spread as error bars.
- `maj_at_k__<task>__<model>.png` and `pass_at_k__...`: maj@k / pass@k against k, one line per
  sampler setting (mean over seeds), for runs that drew several samples per question.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .table import k_columns, param_columns, params_label

FIGURE_DPI = 120


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never a display
    import matplotlib.pyplot as plt

    return plt


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.+" else "_" for c in str(text))


def swept_params(group: pd.DataFrame) -> list[str]:
    """The numeric parameter columns that take more than one value within a sampler's runs."""
    out = []
    for column in param_columns(group):
        values = pd.to_numeric(group[column], errors="coerce")
        if values.notna().all() and values.nunique() > 1:
            out.append(column)
    return out


def hyperparameter_figures(done: pd.DataFrame, metric: str, folder: Path) -> list[Path]:
    if metric not in done.columns:
        return []
    plt = _pyplot()
    written = []
    for sampler, group in done.groupby("sampler", sort=True):
        swept = swept_params(group)
        for param in swept:
            others = [c for c in swept if c != param]
            fig, ax = plt.subplots(figsize=(6, 4))
            for (task, model), runs in group.groupby(["task", "model"], sort=True):
                lines = runs.groupby(others, sort=True, dropna=False) if others else [(None, runs)]
                for _, line in lines:
                    stats = (
                        line.assign(x=pd.to_numeric(line[param]))
                        .groupby("x")[metric]
                        .agg(["mean", "std", "count"])
                        .reset_index()
                    )
                    label = f"{task} / {model}"
                    if others:
                        label += " | " + params_label(line.iloc[0], others)
                    ax.errorbar(
                        stats["x"],
                        stats["mean"],
                        yerr=stats["std"].where(stats["count"] > 1).fillna(0),
                        marker="o",
                        capsize=3,
                        label=label,
                    )
            name = param[len("param.") :]
            written.append(
                _save(
                    plt,
                    fig,
                    ax,
                    name,
                    metric,
                    f"{sampler}: {metric} against {name}",
                    folder / f"{_safe(metric)}_vs_{_safe(name)}__{_safe(sampler)}.png",
                )
            )
    return written


def curve_points(frame: pd.DataFrame, kind: str) -> pd.Series:
    """How many maj@k (or pass@k) values each run has."""
    names = [name for _, name in k_columns(frame, kind)]
    return frame[names].notna().sum(axis=1) if names else pd.Series(0, index=frame.index)


def k_curve_figures(done: pd.DataFrame, kind: str, folder: Path) -> list[Path]:
    """maj@k or pass@k against k, for the runs that have those metrics."""
    columns = k_columns(done, kind)
    if not columns:
        return []
    plt = _pyplot()
    ks, names = zip(*columns)
    params = param_columns(done)
    written = []
    have = done[curve_points(done, kind) >= 2]  # one point (repeats=1) is no curve
    for (task, model), runs in have.groupby(["task", "model"], sort=True):
        fig, ax = plt.subplots(figsize=(6, 4))
        keys = ["sampler", *params]
        for _, line in runs.groupby(keys, sort=True, dropna=False):
            means = line[list(names)].mean()
            present = means.notna().to_numpy()
            label = f"{line.iloc[0]['sampler']} ({params_label(line.iloc[0], params)})"
            ax.plot([k for k, keep in zip(ks, present) if keep], means[present], marker="o", label=label)
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(ks), [str(k) for k in ks])  # k itself, not 2^i
        written.append(
            _save(
                plt,
                fig,
                ax,
                "k (samples per question)",
                f"{kind}@k",
                f"{kind}@k: {task} / {model}",
                folder / f"{kind}_at_k__{_safe(task)}__{_safe(model)}.png",
            )
        )
    return written


def _save(plt, fig, ax, xlabel: str, ylabel: str, title: str, path: Path) -> Path:
    """Label, grid and legend every figure the same way, write it as PNG, free it."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=FIGURE_DPI)
    plt.close(fig)
    return path
