"""Prompt and scoring for `mmlu_pro_cot` (referenced from mmlu_pro_cot.yaml with !function).

A question reads "Question: ...\\nOptions:\\n(A) ...\\n(B) ...\\nAnswer: Let's think step by
step."; an exemplar continues with its chain of thought ending "The answer is (X).".
The answer is the letter of the first "answer is (X)" (the paper's regex
`answer is \\(?([A-J])\\)?`, with "Answer is", a colon and markdown bold allowed, and
the letter not the start of a word: "the answer is Carbon" is no answer). Without
one, "Answer: (X)" or an "Answer: X" that ends its line counts. Answers are the bare
letter, as is the target (the dataset's `answer`).
"""

from __future__ import annotations

import re

from sss.evaluation.answers import INVALID
from sss.evaluation.paper_scoring import PaperRules
from sss.evaluation.scoring import per_doc_metrics

LETTERS = "ABCDEFGHIJ"
ANSWER_CUE = "Answer: Let's think step by step."
_ANSWER_IS = re.compile(r"(?i:answer is)\s*:?\s*\**\s*\(?([A-J])\)?(?![A-Za-z0-9])")
_ANSWER_COLON = re.compile(r"(?i:answer)\s*:\s*\**\s*(?:\(([A-J])\)|([A-J])(?![ \t]*\w))")
# The paper's MMLU-Pro template (lm-eval's regex): the letter of the first "answer is (X)",
# graded ignoring case and punctuation.
PAPER_RULES = PaperRules(regex=r"answer is \(?([ABCDEFGHIJ])\)?", ignore_case=True, ignore_punctuation=True)
# the validation split's chains of thought start with the cue the prompt already ends with
_COT_CUE = re.compile(r"^A:\s*Let's think step by step\.?\s*")


def doc_to_text(doc: dict) -> str:
    options = "\n".join(f"({LETTERS[i]}) {option}" for i, option in enumerate(doc["options"]))
    return f"Question: {doc['question'].strip()}\nOptions:\n{options}\n{ANSWER_CUE}"


def exemplar_answer(doc: dict) -> str:
    """An exemplar's chain of thought after the cue, ending with its answer statement."""
    cot = _COT_CUE.sub("", doc["cot_content"].strip())
    if extract_answer(cot) != doc["answer"]:
        cot = f"{cot} The answer is ({doc['answer']})." if cot else f"The answer is ({doc['answer']})."
    return cot


def extract_answer(response: str) -> str:
    match = _ANSWER_IS.search(response)
    if match:
        return match.group(1)
    match = _ANSWER_COLON.search(response)
    return (match.group(1) or match.group(2)) if match else INVALID


def extract_answers(resps, docs):
    """lm-eval custom filter: every repeat's response -> its extracted answer (repeats kept)."""
    return [[extract_answer(r) for r in doc_resps] for doc_resps in resps]


def target_of(doc: dict) -> str:
    return str(doc["answer"]).strip()


def paper_target(doc: dict) -> str:
    return str(doc["answer"])


def is_correct(answer: str, doc: dict) -> bool:
    return answer != INVALID and answer == target_of(doc)


def process_results(doc, results):
    (answers,) = results
    return per_doc_metrics(answers, lambda answer: is_correct(answer, doc))
