"""maj@k, pass@k and friends against brute-force references and hand-computed cases."""

from __future__ import annotations

import itertools
from collections import Counter

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sss.evaluation.answers import INVALID
from sss.evaluation.metrics import k_values, majority_vote, pass_at_k, question_metrics, summarize, summarize_by_task


def test_k_values_are_powers_of_two_and_n():
    assert k_values(1) == [1]
    assert k_values(4) == [1, 2, 4]
    assert k_values(6) == [1, 2, 4, 6]
    assert k_values(32) == [1, 2, 4, 8, 16, 32]


def test_majority_vote_ignores_invalid_and_breaks_ties_by_first_seen():
    assert majority_vote(["3", INVALID, INVALID, "3", "5"]) == 0
    assert majority_vote([INVALID, "5", "3", "3", "5"]) == 1  # 5 and 3 tie; 5 came first
    assert majority_vote([INVALID, INVALID, INVALID, "7"]) == 3  # invalid never wins
    assert majority_vote([INVALID, INVALID]) is None


def brute_pass_at_k(correct: list[bool], k: int) -> float:
    """Share of k-subsets of the samples holding a correct one (the definition, enumerated)."""
    subsets = list(itertools.combinations(range(len(correct)), k))
    return sum(any(correct[i] for i in s) for s in subsets) / len(subsets)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=10), st.data())
def test_pass_at_k_equals_enumeration_over_subsets(correct, data):
    k = data.draw(st.integers(1, len(correct)))
    assert pass_at_k(len(correct), sum(correct), k) == pytest.approx(brute_pass_at_k(correct, k))


def brute_majority_correct(answers: list[str], target: str) -> bool:
    valid = [a for a in answers if a != INVALID]
    if not valid:
        return False
    counts = Counter(valid)
    top = max(counts.values())
    leaders = [a for a in valid if counts[a] == top]  # in order of appearance
    return leaders[0] == target


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["1", "2", "3", INVALID]), min_size=1, max_size=12))
def test_maj_at_k_and_friends_match_direct_counts(answers):
    target = "2"
    correct = [a == target for a in answers]
    out = question_metrics(answers, correct)
    for k in k_values(len(answers)):
        assert out[f"maj@{k}"] == float(brute_majority_correct(answers[:k], target))
        assert out[f"pass@{k}"] == pytest.approx(brute_pass_at_k(correct, k))
    assert out["accuracy"] == float(correct[0])
    assert out["overall_correct"] == pytest.approx(sum(correct) / len(correct))
    assert out["unique_answers"] == len(set(answers) - {INVALID})


def test_hand_computed_question():
    # 4 samples: 5, 5, 7, invalid; the target is 7
    out = question_metrics(["5", "5", "7", INVALID], [False, False, True, False])
    assert out == {
        "accuracy": 0.0,
        "overall_correct": 0.25,
        "unique_answers": 2.0,
        "maj@1": 0.0,
        "maj@2": 0.0,
        "maj@4": 0.0,
        "pass@1": 0.25,
        "pass@2": 0.5,
        "pass@4": 1.0,
    }


def table(rows):
    return pd.DataFrame(rows, columns=["lm_eval_task", "doc_id", "repeat", "answer", "correct"])


def test_summaries_pool_questions_and_split_by_task():
    samples = table(
        [
            ("a", 0, 0, "1", True),
            ("a", 0, 1, "1", True),
            ("a", 1, 1, "2", False),
            ("a", 1, 0, "3", True),  # out of order on purpose
            ("b", 0, 0, INVALID, False),
            ("b", 0, 1, "4", True),
        ]
    )
    pooled = summarize(samples)
    assert pooled["accuracy"] == pytest.approx(2 / 3)  # a0 yes, a1 (repeat 0 = "3") yes, b0 no
    assert pooled["maj@2"] == pytest.approx(1.0)  # a0 "1"; a1 tie -> "3" first; b0 "4"
    assert pooled["overall_correct"] == pytest.approx(4 / 6)
    assert list(pooled)[:3] == ["accuracy", "overall_correct", "unique_answers"]
    by_task = summarize_by_task(samples)
    assert by_task["a"]["accuracy"] == 1.0 and by_task["b"]["accuracy"] == 0.0
    assert by_task["b"]["pass@1"] == 0.5
