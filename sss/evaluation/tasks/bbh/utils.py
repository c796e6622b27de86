"""Scoring for `bbh_cot` (referenced from bbh_cot.yaml with !function).

An answer is what follows "the answer is" on its line, normalised so that equal
answers compare equal and vote together: multiple-choice letters become "(X)"
whatever text follows them, numbers are normalised, anything else is compared
case-insensitively with single spaces and without a closing period or quotes.
"""

from __future__ import annotations

import re

from sss.evaluation.answers import INVALID, after_answer_is, normalize_number
from sss.evaluation.paper_scoring import PaperRules
from sss.evaluation.scoring import per_doc_metrics

_CHOICE = re.compile(r"\(?([A-R])\)?(?=$|[\s.,:;)])")
_NUMBER_ONLY = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")

# The paper's BBH template: everything after a lower-case "the answer is" on its line but the
# line's last character, graded ignoring case and punctuation.
PAPER_RULES = PaperRules(regex=r"(?<=the answer is )(.*)(?=.)", ignore_case=True, ignore_punctuation=True)


def normalize_answer(text: str) -> str:
    # markdown emphasis, quotes and a closing period, in any nesting ("**False**.", "'yes'.")
    previous = None
    while text != previous:
        previous = text
        text = text.strip().strip("*\"'`").rstrip(".")
    if not text:
        return INVALID
    choice = _CHOICE.match(text)
    if choice:
        return f"({choice.group(1)})"
    if _NUMBER_ONLY.fullmatch(text):
        return normalize_number(text) or text
    return " ".join(text.lower().split())


def extract_answer(response: str) -> str:
    rest = after_answer_is(response)
    return INVALID if rest is None else normalize_answer(rest)


def extract_answers(resps, docs):
    """lm-eval custom filter: every repeat's response -> its extracted answer (repeats kept)."""
    return [[extract_answer(r) for r in doc_resps] for doc_resps in resps]


def target_of(doc: dict) -> str:
    return normalize_answer(doc["target"])


def paper_target(doc: dict) -> str:
    return doc["target"]


def is_correct(answer: str, doc: dict) -> bool:
    return answer != INVALID and answer == target_of(doc)


def process_results(doc, results):
    (answers,) = results
    return per_doc_metrics(answers, lambda answer: is_correct(answer, doc))
