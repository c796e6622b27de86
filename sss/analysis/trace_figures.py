"""Figures of the trace analyses (seaborn, PNG), one per analysis and (task, model), one line
per run (sampler, parameters, seed):

- `low_conf_tokens__<task>__<model>.png`: accuracy (top) and samples (bottom) against the
  number of low-confidence steps per sample; `low_prob_tokens__...` the same for low-probability
  sampled tokens;
- `sampled_rank__...`: accuracy against the rank sampled at low-confidence steps, over every
  event (left) and over samples with exactly one event (right); `low_prob_rank__...` likewise;
- `max_rank_bins__...`: accuracy (top) and samples (bottom) by the largest rank sampled at a
  low-confidence step, samples without one at `none`;
- `conditioned_vote__...`: plain against conditioned majority vote, per run.

With more than 16 runs in one figure, the line figures pool the runs of each sampler into one
line (the tables keep every run).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from .figures import FIGURE_DPI, _pyplot, _safe

# Bins such as "10+" are categories on purpose; matplotlib says so at INFO for every axis.
logging.getLogger("matplotlib.category").setLevel(logging.WARNING)

LEGEND_MAX = 16  # more runs than this in a figure: one pooled line per sampler


def _label(frame: pd.DataFrame) -> pd.Series:
    return frame["sampler"].astype(str) + " (" + frame["params"].astype(str) + ") seed " + frame["seed"].astype(str)


def _finish(plt, fig, axes, title: str, path: Path, runs: int) -> Path:
    fig.suptitle(title)
    for ax in axes:
        ax.grid(alpha=0.3)
        legend = ax.get_legend()
        if legend is not None:
            legend.remove()
    handles, labels = axes[0].get_legend_handles_labels()
    if handles and runs <= LEGEND_MAX:
        fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=min(2, len(labels)), bbox_to_anchor=(0.5, 0.0))
        fig.tight_layout(rect=(0, 0.04 + 0.03 * ((len(labels) + 1) // 2), 1, 1))
    else:
        fig.tight_layout()
    fig.savefig(path, dpi=FIGURE_DPI, bbox_inches="tight")  # long suptitles stay whole
    plt.close(fig)
    return path


def _per_model(table: pd.DataFrame, count: str | None = None, keys: tuple[str, ...] = ()):
    """(task, model, frame with a `run` label). With more than LEGEND_MAX runs and a `count`
    column, the runs of each sampler are pooled into one line (counts summed, accuracy
    recomputed): fifty lines of one colour family say nothing, the per-run rows stay in the tables."""
    for (task, model), frame in table.groupby(["task", "model"], sort=True):
        runs = frame["run_dir"].nunique()
        if count is None or runs <= LEGEND_MAX:
            yield task, model, frame.assign(run=_label(frame))
            continue
        per_sampler = frame.groupby("sampler")["run_dir"].nunique()
        pooled = frame.groupby(["sampler", "order", *keys], sort=True)[[count, "correct"]].sum().reset_index()
        pooled["accuracy"] = pooled["correct"] / pooled[count]
        pooled["run"] = pooled["sampler"].map(lambda name: f"{name} ({per_sampler[name]} runs pooled)")
        yield task, model, pooled


def _lines(ax, frame: pd.DataFrame, y: str, labels: dict[int, str]) -> None:
    """One line per run over the ordered bins (numeric x, the bins' labels as ticks), in a
    seaborn palette; drawn with matplotlib directly, which stays fast with a hundred runs."""
    import seaborn as sns

    runs = list(dict.fromkeys(frame["run"]))
    colors = sns.color_palette("tab10" if len(runs) <= 10 else "husl", len(runs))
    for color, (run, line) in zip(colors, frame.groupby("run", sort=False)):
        line = line.sort_values("order")
        ax.plot(line["order"], line[y], marker="o", markersize=4, linewidth=1.2, color=color, label=run)
    ax.set_xticks(sorted(labels), [labels[o] for o in sorted(labels)])


def _labels(frame: pd.DataFrame, column: str) -> dict[int, str]:
    return dict(zip(frame["order"], frame[column]))


def count_figures(table: pd.DataFrame, name: str, what: str, folder: Path) -> list[Path]:
    return _accuracy_and_samples(table, "events", what, f"accuracy against {what}", name, folder)


def _accuracy_and_samples(
    table: pd.DataFrame, column: str, xlabel: str, title: str, name: str, folder: Path
) -> list[Path]:
    """Accuracy (top) and sample counts (bottom, log) against one binned column, a line per run."""
    plt = _pyplot()
    out = []
    for task, model, frame in _per_model(table, "samples", (column,)):
        labels = _labels(frame, column)
        fig, axes = plt.subplots(2, 1, figsize=(7, 6.5), sharex=True)
        _lines(axes[0], frame, "accuracy", labels)
        _lines(axes[1], frame, "samples", labels)
        axes[0].set_ylabel("accuracy")
        axes[0].set_ylim(-0.02, 1.02)
        axes[1].set_ylabel("samples")
        axes[1].set_yscale("log")
        axes[1].set_xlabel(xlabel)
        out.append(
            _finish(
                plt,
                fig,
                axes,
                f"{task} / {model}: {title}",
                folder / f"{name}__{_safe(task)}__{_safe(model)}.png",
                frame["run"].nunique(),
            )
        )
    return out


def rank_figures(table: pd.DataFrame, name: str, what: str, folder: Path) -> list[Path]:
    plt = _pyplot()
    out = []
    for task, model, frame in _per_model(table, "events", ("rank", "subset")):
        labels = _labels(frame, "rank")
        fig, axes = plt.subplots(1, 2, figsize=(10, 4.5), sharey=True)
        for ax, subset, title in (
            (axes[0], "all", "every event"),
            (axes[1], "one_event", "samples with exactly one event"),
        ):
            part = frame[frame["subset"] == subset]
            if not part.empty:
                _lines(ax, part, "accuracy", labels)
            ax.set_title(title, fontsize=9)
            ax.set_xlabel(f"rank sampled at {what}")
        axes[0].set_ylabel("accuracy of the sample")
        axes[0].set_ylim(-0.02, 1.02)
        out.append(
            _finish(
                plt,
                fig,
                axes,
                f"{task} / {model}: accuracy by sampled rank",
                folder / f"{name}__{_safe(task)}__{_safe(model)}.png",
                frame["run"].nunique(),
            )
        )
    return out


def max_rank_figures(table: pd.DataFrame, folder: Path) -> list[Path]:
    return _accuracy_and_samples(
        table,
        "max_rank",
        "largest rank sampled at a low-confidence step",
        "accuracy by largest sampled rank",
        "max_rank_bins",
        folder,
    )


def vote_figures(table: pd.DataFrame, folder: Path) -> list[Path]:
    import seaborn as sns

    plt = _pyplot()
    out = []
    for task, model, frame in _per_model(table):
        long = frame.melt(
            id_vars=["run"], value_vars=["plain_vote", "conditioned_vote"], var_name="vote", value_name="accuracy"
        )
        fig, ax = plt.subplots(figsize=(7, 0.9 + 0.45 * frame["run"].nunique()))
        sns.barplot(long, y="run", x="accuracy", hue="vote", ax=ax, orient="h", errorbar=None)
        ax.set_xlim(0, 1)
        ax.set_ylabel("")
        ax.set_xlabel(f"majority-vote accuracy ({frame['rule'].iloc[0]})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        ax.set_title(f"{task} / {model}: conditioned against plain vote")
        fig.tight_layout()
        path = folder / f"conditioned_vote__{_safe(task)}__{_safe(model)}.png"
        fig.savefig(path, dpi=FIGURE_DPI, bbox_inches="tight")  # long suptitles stay whole
        plt.close(fig)
        out.append(path)
    return out


def trace_figures(tables: dict[str, pd.DataFrame], options, folder: Path) -> list[Path]:
    if not tables:
        return []
    low = f"low-confidence steps (p_max < {options.low_conf:g})"
    sampled = f"sampled tokens with p < {options.sampled_prob:g}"
    return [
        *count_figures(tables["low_conf_tokens"], "low_conf_tokens", low, folder),
        *rank_figures(tables["sampled_rank"], "sampled_rank", "low-confidence steps", folder),
        *max_rank_figures(tables["max_rank_bins"], folder),
        *vote_figures(tables["conditioned_vote"], folder),
        *count_figures(tables["low_prob_tokens"], "low_prob_tokens", sampled, folder),
        *rank_figures(tables["low_prob_rank"], "low_prob_rank", f"steps with p < {options.sampled_prob:g}", folder),
    ]
