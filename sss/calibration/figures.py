"""Figures of a calibration (seaborn, PNG through matplotlib's Agg backend).

- `grid_heatmap.png`: c_hat per (bin, rank), colour and annotation, highest bin on top; each
  row label carries the bin's share of traced tokens;
- `power_law.png`: c_hat against p_mean on log-log axes, one colour per bin, with the fitted
  line 10**A * p**B.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

DPI = 130


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def grid_heatmap(grid: pd.DataFrame, path: Path, title: str) -> Path:
    import seaborn as sns
    from matplotlib.colors import PowerNorm

    plt = _pyplot()
    table = grid.pivot(index="bin", columns="rank", values="c_hat").sort_index(ascending=False)
    share = grid.groupby("bin")["token_share"].first()
    labels = [f"({(m - 1) / len(share):.1f}, {m / len(share):.1f}]  {100 * share[m]:.1f}%" for m in table.index]
    k = table.shape[1]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.62 * k + 2.5), 0.5 * len(table) + 1.6))
    # gamma < 1 spreads the many small shares over the colour scale
    sns.heatmap(
        table,
        ax=ax,
        annot=True,
        fmt=".2f",
        annot_kws={"fontsize": 6.5},
        cmap="viridis",
        norm=PowerNorm(gamma=0.5, vmin=0, vmax=1),
        yticklabels=labels,
        cbar_kws={"label": "c-hat: share of the bin's steps with the gold token at rank r"},
    )
    ax.set_xlabel("rank r of the token")
    ax.set_ylabel("confidence bin of p_max  (share of tokens)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def power_law_scatter(grid: pd.DataFrame, fit: dict[str, Any] | None, path: Path, title: str) -> Path:
    import seaborn as sns

    plt = _pyplot()
    cells = grid[(grid["c_hat"] > 0) & (grid["p_mean"] > 0)].copy()
    cells["bin"] = cells["bin"].map(lambda m: f"bin {m}")
    fig, ax = plt.subplots(figsize=(6.5, 5))
    sns.scatterplot(data=cells, x="p_mean", y="c_hat", hue="bin", palette="viridis", ax=ax, s=28)
    if fit is not None:
        x = np.logspace(np.log10(cells["p_mean"].min()), np.log10(cells["p_mean"].max()), 50)
        ax.plot(
            x,
            10 ** fit["a"] * x ** fit["b"],
            color="black",
            lw=1.2,
            label=f"log10 c = {fit['a']:.3f} + {fit['b']:.3f} log10 p  (R2 {fit['r2']:.3f})",
        )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="p-hat: mean probability of the rank-r token in the bin",
        ylabel="c-hat: share of steps with the gold token at rank r",
    )
    ax.legend(fontsize=7, ncol=2)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def accuracy_vs_share(frame: pd.DataFrame, path: Path) -> Path:
    """The paper's Figure 2: per-bin expected accuracy against the bin's share of tokens, one
    line per calibration (model). `frame`: columns label, bin, token_share, expected_accuracy."""
    import seaborn as sns

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 5))
    data = frame.assign(token_share=100 * frame["token_share"])
    sns.lineplot(data=data, x="token_share", y="expected_accuracy", hue="label", marker="o", sort=False, ax=ax)
    for _, row in data.iterrows():
        ax.annotate(
            str(int(row["bin"])),
            (row["token_share"], row["expected_accuracy"]),
            fontsize=6,
            xytext=(3, 3),
            textcoords="offset points",
        )
    ax.set(
        xscale="log",
        xlabel="share of traced tokens in the bin (%)",
        ylabel="expected accuracy of the bin (sum over r of p-hat x c-hat)",
    )
    ax.set_title("expected accuracy per confidence bin (numbers: bin)", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
