"""The schematic of the paper's Figure 0: which tokens each rule keeps as the model's confidence
varies. Drawn from `sss.samplers.process_logits` itself, with each rule's parameters read from
its `conf/sampler/<rule>.yaml`, so the picture is what the code does, not a redrawing.

    python -m sss.analysis.schematic                     # writes schematic.png
    python -m sss.analysis.schematic --out docs/figures/schematic.png --ranks 25

Each panel is one rule; a column is one next-token distribution whose top probability p_max is
on the x axis, a row is a token by rank (1 = most probable). Kept tokens are coloured by the
probability they are sampled with (after temperature and the rule), dropped ones are blank.
The distributions are Zipf-shaped over `--vocab` tokens, p(rank r) proportional to r^-a, with
the exponent a solved for each p_max.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

CONF = Path(__file__).resolve().parents[2] / "conf"
# The rules shown, in the order of the panels (temperature alone keeps every token).
RULES = (
    "temperature",
    "top_k",
    "top_p",
    "min_p",
    "epsilon",
    "eta",
    "greedy_threshold",
    "calibrated_topk",
    "calibrated_epsilon",
    "confidence_bin",
    "greedy",
    "edt",
)


def rule_specs(rules=RULES) -> dict[str, object]:
    """{rule: SamplerSpec} from the base `sampler` section of conf/config.yaml plus the rule's yaml."""
    import yaml

    from sss.samplers import SamplerSpec

    base = yaml.safe_load((CONF / "config.yaml").read_text())["sampler"]
    out = {}
    for rule in rules:
        values = yaml.safe_load((CONF / "sampler" / f"{rule}.yaml").read_text()) or {}
        out[rule] = SamplerSpec.from_mapping({**base, **values})
    return out


def zipf_logits(p_max: np.ndarray, vocab: int) -> np.ndarray:
    """Logits [len(p_max), vocab]: -a * log(rank), a found by bisection so that softmax's top
    probability is p_max (p_max must lie in (1/vocab, 1))."""
    log_rank = np.log(np.arange(1, vocab + 1, dtype=np.float64))
    lo, hi = np.zeros_like(p_max), np.full_like(p_max, 60.0)
    for _ in range(80):  # top probability 1 / sum(r^-a) grows with a
        a = (lo + hi) / 2
        top = 1.0 / np.exp(-a[:, None] * log_rank).sum(axis=1)
        lo, hi = np.where(top < p_max, a, lo), np.where(top < p_max, hi, a)
    return -((lo + hi) / 2)[:, None] * log_rank


def kept_probabilities(spec, logits: np.ndarray, ranks: int) -> np.ndarray:
    """[ranks, columns]: the probability each of the first `ranks` tokens is sampled with after
    the rule (softmax of process_logits' output), NaN where the rule drops it."""
    import torch

    from sss.samplers import process_logits

    out = process_logits(torch.tensor(logits, dtype=torch.float32), spec)
    probs = torch.softmax(out, dim=-1)[:, :ranks]
    kept = torch.isfinite(out[:, :ranks])
    return torch.where(kept, probs, torch.nan).numpy().T


def title(rule: str, spec) -> str:
    """The rule's name, and its parameters as the run directories name them."""
    from sss.runs.layout import sampler_params

    params = sampler_params(spec)
    return rule if params in (rule, "temperature-1") else f"{rule}\n{params[len(rule) + 1 :]}"


def draw(out: Path, ranks: int = 25, vocab: int = 1000, columns: int = 60) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns
    from matplotlib.colors import LogNorm

    p_max = np.linspace(0.02, 0.98, columns)
    logits = zipf_logits(p_max, vocab)
    specs = rule_specs()
    cols = 4
    rows = -(-len(specs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.9 * rows), sharex=True, sharey=True)
    cmap = sns.color_palette("rocket_r", as_cmap=True)
    norm = LogNorm(vmin=1e-4, vmax=1.0)
    image = None
    for ax, (rule, spec) in zip(axes.flat, specs.items()):
        kept = kept_probabilities(spec, logits, ranks)
        image = ax.imshow(
            kept,
            aspect="auto",
            origin="upper",
            cmap=cmap,
            norm=norm,
            interpolation="nearest",
            extent=(p_max[0], p_max[-1], ranks + 0.5, 0.5),
        )
        ax.set_title(title(rule, spec), fontsize=9)
        ax.set_facecolor("#f4f4f4")
    for ax in axes.flat[len(specs) :]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("p_max of the step")
    for ax in axes[:, 0]:
        ax.set_ylabel("token rank")
    fig.colorbar(image, ax=axes, shrink=0.6, label="probability of being sampled (blank: dropped)")
    fig.suptitle(
        "Tokens each rule keeps as confidence varies (from sss.samplers; parameters of conf/sampler/*.yaml)",
        fontsize=11,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Draw which tokens each sampler rule keeps as p_max varies.")
    parser.add_argument("--out", type=Path, default=Path("schematic.png"))
    parser.add_argument("--ranks", type=int, default=25, help="token ranks shown (rows)")
    parser.add_argument("--vocab", type=int, default=1000, help="vocabulary of the synthetic distributions")
    parser.add_argument("--columns", type=int, default=60, help="p_max values (columns)")
    args = parser.parse_args(argv)
    print(draw(args.out, args.ranks, args.vocab, args.columns))


if __name__ == "__main__":
    main()
