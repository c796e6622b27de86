"""The confidence-bin ablation (the paper's Figure 1; `sweep=confidence_bins`): sampling only at
steps whose p_max falls in bin m, greedy elsewhere. For each bin m, maj@k and the number of
distinct valid answers among the first k samples of a question, against k.

Computed from each run's samples.parquet (answers in repeat order), so every k = 1, 2, 4, ...,
n has a unique-answers value as well (metrics.json has it for k = n only); the maj@k rule is the
one of sss.evaluation.metrics (`vote` in sss.analysis.traces). Runs of one bin and different
seeds are averaged.

Table `confidence_bins.parquet`/`.csv`: task, model, bins, confidence_bin, seeds, k, maj_at_k,
unique_answers. Figure `confidence_bins__<task>__<model>.png` (`confidence_bins-<n>__...` for
sampler.bins = n other than 10): two panels, one curve per bin.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sss.evaluation.answers import INVALID
from sss.evaluation.metrics import k_values

from .figures import FIGURE_DPI, _pyplot, _safe
from .traces import QUESTION, vote

BIN = "param.confidence_bin"
BINS = "param.bins"
SAMPLER = "confidence_bin"


def k_curves(samples: pd.DataFrame) -> pd.DataFrame:
    """maj@k and mean unique valid answers over questions, for k = 1, 2, 4, ..., n (n = repeats)."""
    n = int(samples.groupby(QUESTION)["repeat"].size().min())
    rows = []
    for k in k_values(n):
        first = samples[samples["repeat"] < k].assign(run_dir="run")
        votes = vote(first)
        valid = first[first["answer"] != INVALID]
        unique = valid.groupby(QUESTION)["answer"].nunique()
        unique = unique.reindex(pd.MultiIndex.from_frame(votes[QUESTION]), fill_value=0)
        rows.append({"k": k, "maj_at_k": float(votes["vote_correct"].mean()), "unique_answers": float(unique.mean())})
    return pd.DataFrame(rows)


def confidence_bin_table(done: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, model, bins, bin, k) over the finished confidence-bin runs."""
    if "sampler" not in done.columns or BIN not in done.columns:
        return pd.DataFrame()
    # "confidence_bin", or "confidence_bin+bins" when sampler.bins is not the default 10
    alone = done["sampler"].map(lambda name: set(str(name).split("+")) <= {SAMPLER, "bins"})
    runs = done[alone & done[BIN].notna()]
    parts = []
    for _, row in runs.iterrows():
        path = Path(row["run_dir"]) / "samples.parquet"
        try:
            samples = pd.read_parquet(path, columns=[*QUESTION, "repeat", "answer", "correct"])
        except Exception:  # noqa: BLE001  a run without readable samples has no curve
            continue
        bins = row.get(BINS)
        curves = k_curves(samples).assign(
            task=row["task"],
            model=row["model"],
            bins=10 if pd.isna(bins) else int(bins),
            confidence_bin=int(row[BIN]),
            seed=row["seed"],
        )
        parts.append(curves)
    if not parts:
        return pd.DataFrame()
    table = pd.concat(parts, ignore_index=True)
    keys = ["task", "model", "bins", "confidence_bin", "k"]
    return (
        table.groupby(keys)
        .agg(seeds=("seed", "nunique"), maj_at_k=("maj_at_k", "mean"), unique_answers=("unique_answers", "mean"))
        .reset_index()
    )


def confidence_bin_figures(table: pd.DataFrame, folder: Path) -> list[Path]:
    """Two panels (maj@k, unique answers against k), one curve per bin, per (task, model, bins)
    that has at least two bins."""
    if table.empty:
        return []
    import seaborn as sns

    plt = _pyplot()
    out = []
    for (task, model, bins), frame in table.groupby(["task", "model", "bins"], sort=True):
        if frame["confidence_bin"].nunique() < 2:
            continue
        edges = {m: f"{m}: ({(m - 1) / bins:.1f}, {m / bins:.1f}]" for m in frame["confidence_bin"].unique()}
        frame = frame.assign(bin=frame["confidence_bin"].map(edges))
        hue_order = [b for _, b in sorted(zip(frame["confidence_bin"], frame["bin"]))]
        hue_order = list(dict.fromkeys(hue_order))
        palette = sns.color_palette("viridis", len(hue_order))
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
        for ax, column, label in ((axes[0], "maj_at_k", "maj@k"), (axes[1], "unique_answers", "unique valid answers")):
            sns.lineplot(
                frame,
                x="k",
                y=column,
                hue="bin",
                hue_order=hue_order,
                palette=palette,
                marker="o",
                ax=ax,
                legend=ax is axes[1],
            )
            ax.set_xscale("log", base=2)
            ks = sorted(frame["k"].unique())
            ax.set_xticks(ks, [str(k) for k in ks])
            ax.set_xlabel("k (samples per question)")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
        axes[1].legend(title="sampled only in bin (p_max)", fontsize=7, title_fontsize=8)
        fig.suptitle(f"{task} / {model}: sampling in one confidence bin, greedy elsewhere")
        fig.tight_layout()
        name = "confidence_bins" if bins == 10 else f"confidence_bins-{bins}"  # one figure per bin count
        path = folder / f"{name}__{_safe(task)}__{_safe(model)}.png"
        fig.savefig(path, dpi=FIGURE_DPI)
        plt.close(fig)
        out.append(path)
    return out
