"""Per-document metrics over the repeats of one question."""

from __future__ import annotations

from collections.abc import Callable, Sequence


def per_doc_metrics(answers: Sequence[str], correct: Callable[[str], bool]) -> dict[str, float]:
    """`exact_match`: the first sample is correct; `overall_correct`: share of correct samples."""
    flags = [bool(correct(a)) for a in answers]
    return {
        "exact_match": float(flags[0]),
        "overall_correct": sum(flags) / len(flags),
    }
