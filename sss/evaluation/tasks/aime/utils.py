"""Scoring for `aime24` / `aime25` (referenced from aime.yaml with !function).

The answer is the last complete \\boxed{...} of a response (else the sentence after
"the answer is"), normalised by sss.evaluation.math_answers; AIME answers are
integers 0-999, compared by value ("033" is 33).
"""

from __future__ import annotations

import datasets

from sss.evaluation.math_answers import extract_math_answer, normalize_math, same_answer
from sss.evaluation.scoring import per_doc_metrics

# each field of the one schema the prompt uses, as the hub datasets spell it
# (Maxwell-Jia/AIME_2024: ID, Problem, Answer; math-ai/aime25: id, problem, answer)
FIELDS = {"id": ("id", "ID"), "problem": ("problem", "Problem"), "answer": ("answer", "Answer")}


def field_of(columns, field: str) -> str | None:
    """Which spelling of `field` a dataset with these columns uses (None: neither)."""
    return next((name for name in FIELDS[field] if name in columns), None)


def process_docs(dataset):
    """Any AIME dataset -> rows {id, problem, answer} (strings; a missing id is the row index)."""
    columns = dataset.column_names
    problem, answer, ident = (field_of(columns, f) for f in ("problem", "answer", "id"))
    if problem is None or answer is None:
        raise KeyError(f"an AIME dataset needs fields problem/Problem and answer/Answer; it has {columns}")

    def unify(doc, index):
        return {
            "id": str(doc[ident]) if ident else str(index),
            "problem": doc[problem],
            "answer": str(doc[answer]).strip(),
        }

    # explicit string features: otherwise a kept column name keeps its type (an int answer)
    features = datasets.Features({name: datasets.Value("string") for name in FIELDS})
    return dataset.map(unify, with_indices=True, remove_columns=columns, features=features)


def extract_answers(resps, docs):
    """lm-eval custom filter: every repeat's response -> its extracted answer (repeats kept)."""
    return [[extract_math_answer(r) for r in doc_resps] for doc_resps in resps]


def target_of(doc: dict) -> str:
    return normalize_math(str(doc["answer"]))


def is_correct(answer: str, doc: dict) -> bool:
    return same_answer(answer, target_of(doc))


def process_results(doc, results):
    (answers,) = results
    return per_doc_metrics(answers, lambda answer: is_correct(answer, doc))
