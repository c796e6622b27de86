"""Metrics over the repeats of each question, computed from the samples table.

samples.parquet holds one row per (lm-eval task, doc, repeat) with the extracted
answer and whether it is correct; every number in metrics.json's `metrics` is a
function of those rows, so an analysis can always recompute it.

- accuracy: the first sample of each question is correct
- overall_correct: share of all samples that are correct
- unique_answers: mean number of distinct valid answers per question
- maj@k: the majority answer of the first k repeats is correct. Unparseable answers
  ("[invalid]") do not vote (a question with none valid counts wrong); ties go to the
  answer reached first, so the vote is deterministic.
- pass@k: probability that at least one of k samples drawn from the n is correct,
  the unbiased estimator 1 - C(n-c, k) / C(n, k) of Chen et al. (2021).

The paper's metrics (`paper_summarize`, metrics.json `paper`) run lm-eval's chain on the
same rows instead (sss/evaluation/paper_scoring.py): each response's raw extracted string
(first regex match or "[invalid]"); maj@k the most frequent raw string of the first k
repeats (invalid ones vote and can win; ties to the first seen), graded by exact match
with the task's ignore rules; pass@k the oracle over the first k (one of them is correct);
accuracy the first repeat; overall_correct the share of correct repeats; unique_answers
the distinct raw strings per question, "[invalid]" included.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING
from collections.abc import Sequence

import pandas as pd

from .answers import INVALID

if TYPE_CHECKING:
    from .paper_scoring import PaperRules

QUESTION = ["lm_eval_task", "doc_id"]


def k_values(n: int) -> list[int]:
    """1, 2, 4, ... up to n, and n itself."""
    ks, k = [], 1
    while k <= n:
        ks.append(k)
        k *= 2
    if ks[-1] != n:
        ks.append(n)
    return ks


def majority_vote(answers: Sequence[str]) -> int | None:
    """Index of the first sample carrying the majority valid answer (None: no valid answer)."""
    counts = Counter(a for a in answers if a != INVALID)
    if not counts:
        return None
    top = max(counts.values())
    return next(i for i, a in enumerate(answers) if a != INVALID and counts[a] == top)


def pass_at_k(n: int, c: int, k: int) -> float:
    """1 - C(n-c, k) / C(n, k), as a running product (no huge binomials)."""
    if n - c < k:
        return 1.0
    miss = 1.0
    for i in range(k):
        miss *= (n - c - i) / (n - i)
    return 1.0 - miss


def question_metrics(answers: Sequence[str], correct: Sequence[bool]) -> dict[str, float]:
    """Metrics of one question from its repeats in order."""
    n = len(answers)
    c = int(sum(bool(x) for x in correct))
    out = {
        "accuracy": float(bool(correct[0])),
        "overall_correct": c / n,
        "unique_answers": float(len({a for a in answers if a != INVALID})),
    }
    for k in k_values(n):
        winner = majority_vote(answers[:k])
        out[f"maj@{k}"] = 0.0 if winner is None else float(bool(correct[winner]))
    for k in k_values(n):
        out[f"pass@{k}"] = pass_at_k(n, c, k)
    return out


def per_question(samples: pd.DataFrame) -> pd.DataFrame:
    """One row per question (lm-eval task, doc id) with its metrics."""
    rows = []
    ordered = samples.sort_values(QUESTION + ["repeat"])
    for (task, doc_id), group in ordered.groupby(QUESTION, sort=False):
        rows.append(
            {"lm_eval_task": task, "doc_id": doc_id, **question_metrics(list(group["answer"]), list(group["correct"]))}
        )
    return pd.DataFrame(rows)


def _ordered(columns) -> list[str]:
    head = ["accuracy", "overall_correct", "unique_answers"]
    rest = [c for c in columns if c not in head and c not in QUESTION]
    key = lambda c: (c.split("@")[0], int(c.split("@")[1]))  # noqa: E731
    return (
        head
        + sorted((c for c in rest if c.startswith("maj@")), key=key)
        + sorted((c for c in rest if c.startswith("pass@")), key=key)
    )


def summarize(samples: pd.DataFrame) -> dict[str, float]:
    """Means over all questions (pooled across lm-eval tasks, i.e. weighted by size)."""
    table = per_question(samples)
    return {name: float(table[name].mean()) for name in _ordered(table.columns)}


def summarize_by_task(samples: pd.DataFrame) -> dict[str, dict[str, float]]:
    table = per_question(samples)
    return {
        task: {name: float(group[name].mean()) for name in _ordered(table.columns)}
        for task, group in table.groupby("lm_eval_task")
    }


def paper_question_metrics(extracted: Sequence[str], reference: str, rules: PaperRules) -> dict[str, float]:
    """The paper's metrics of one question from its repeats' raw extracted strings, in order."""
    n = len(extracted)
    correct = [rules.matches(answer, reference) for answer in extracted]
    out = {
        "accuracy": float(correct[0]),
        "overall_correct": sum(correct) / n,
        "unique_answers": float(len(set(extracted))),
    }
    for k in k_values(n):
        # lm-eval's majority_vote: Counter.most_common keeps first-seen order among equal counts
        vote = Counter(extracted[:k]).most_common(1)[0][0]
        out[f"maj@{k}"] = float(rules.matches(vote, reference))
    for k in k_values(n):
        out[f"pass@{k}"] = float(any(correct[:k]))
    return out


def paper_per_question(samples: pd.DataFrame, rules: PaperRules) -> pd.DataFrame:
    """One row per question with the paper's metrics, recomputed from each response.

    The reference is the paper's target (`reference`); runs recorded before that column
    existed fall back to sss's normalised `target`, which the exact-match rules treat alike
    for these tasks (case, commas, "$")."""
    reference = "reference" if "reference" in samples.columns else "target"
    rows = []
    ordered = samples.sort_values(QUESTION + ["repeat"])
    for (task, doc_id), group in ordered.groupby(QUESTION, sort=False):
        extracted = [rules.extract(response) for response in group["response"]]
        rows.append(
            {
                "lm_eval_task": task,
                "doc_id": doc_id,
                **paper_question_metrics(extracted, str(group[reference].iloc[0]), rules),
            }
        )
    return pd.DataFrame(rows)


def paper_summarize(samples: pd.DataFrame, rules: PaperRules) -> dict[str, float]:
    table = paper_per_question(samples, rules)
    return {name: float(table[name].mean()) for name in _ordered(table.columns)}


def paper_summarize_by_task(samples: pd.DataFrame, rules: PaperRules) -> dict[str, dict[str, float]]:
    table = paper_per_question(samples, rules)
    return {
        task: {name: float(group[name].mean()) for name in _ordered(table.columns)}
        for task, group in table.groupby("lm_eval_task")
    }
