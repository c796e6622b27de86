"""Scoring for `gsm8k_cot` (referenced from gsm8k_cot.yaml with !function)."""

from __future__ import annotations

import re

from sss.evaluation.answers import normalize_number, number_after_answer_is
from sss.evaluation.paper_scoring import PaperRules
from sss.evaluation.scoring import per_doc_metrics

_CALCULATOR = re.compile(r"<<[^>]*>>")

# The paper's GSM8K task YAML: what follows "The answer is" up to a full stop or backslash,
# graded case-insensitively after deleting these patterns (in this order) from both sides.
PAPER_RULES = PaperRules(
    regex=r"(?<=[Tt]he answer is )[^.\\]+",
    ignore_case=True,
    ignore_punctuation=False,
    regexes_to_ignore=(
        ",",
        r"\$",
        r"(?s).*#### ",
        r"\.$",
        r"\\boxed\{",
        r"\}\$",
        r"\{|\}",
        ":",
        r"\s+",
        r"[a-zA-Z]+",
        r"\\[\(\)]",
        r"\\[\[\]]",
        r"\\",
    ),
)


def extract_answers(resps, docs):
    """lm-eval custom filter: every repeat's response -> its extracted answer (repeats kept)."""
    return [[number_after_answer_is(r) for r in doc_resps] for doc_resps in resps]


def target_of(doc: dict) -> str:
    """The gold number after '####' in a GSM8K answer, normalised like the extracted answers."""
    raw = doc["answer"].split("####")[-1]
    return normalize_number(raw) or raw.strip()


def paper_target(doc: dict) -> str:
    """The paper's reference: the text after '####', as its YAML's doc_to_target gives it."""
    return doc["answer"].split("####")[-1].strip()


def is_correct(answer: str, doc: dict) -> bool:
    return answer == target_of(doc)


def process_results(doc, results):
    (answers,) = results
    return per_doc_metrics(answers, lambda answer: is_correct(answer, doc))


def exemplar_from_train(record: dict) -> dict[str, str]:
    """A GSM8K training record as a chain-of-thought exemplar in the paper's answer form:
    calculator annotations dropped, steps on one line, '#### N' -> 'The answer is N.'."""
    steps, _, final = record["answer"].rpartition("####")
    lines = [line.strip() for line in _CALCULATOR.sub("", steps).splitlines() if line.strip()]
    # GSM8K writes one step per line, often without a full stop; on one line they need one
    steps = " ".join(line if line[-1] in ".!?" else line + "." for line in lines)
    return {"question": record["question"], "rationale": f"{steps} The answer is {final.strip()}."}
