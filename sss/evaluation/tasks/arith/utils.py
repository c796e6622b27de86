"""Scoring for the `arith` task (referenced from arith.yaml with !function)."""

from sss.evaluation.answers import number_after_answer_is, normalize_number
from sss.evaluation.scoring import per_doc_metrics


def extract_answers(resps, docs):
    """lm-eval custom filter: every repeat's response -> its extracted answer (repeats kept)."""
    return [[number_after_answer_is(r) for r in doc_resps] for doc_resps in resps]


def is_correct(answer: str, doc: dict) -> bool:
    return answer == target_of(doc)


def process_results(doc, results):
    # one generate_until instance per doc; its filtered response is the list of answers
    (answers,) = results
    return per_doc_metrics(answers, lambda answer: is_correct(answer, doc))


def target_of(doc: dict) -> str:
    return normalize_number(doc["target"]) or doc["target"]
