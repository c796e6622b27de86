"""The generated arithmetic task: deterministic, self-consistent, scored by its own extractor."""

from __future__ import annotations

import re

from sss.evaluation.tasks.arith import utils
from sss.evaluation.tasks.arith.generate import data_files, generate


def test_generation_is_deterministic_and_splits_differ():
    assert generate("test") == generate("test")
    assert generate("train")[0]["question"] != generate("test")[0]["question"]
    assert len(generate("test")) == 200 and len({d["question"] for d in generate("test")}) > 190


def test_every_rationale_computes_its_target():
    for doc in generate("test") + generate("train"):
        # each step "a op b = c" is true arithmetic, and the last result is the target
        results = []
        for a, op, b, c in re.findall(r"(\d+) ([-+*]) (\d+) = (\d+)", doc["rationale"]):
            assert eval(f"{a} {op} {b}") == int(c), doc  # noqa: S307 (digits and one operator)
            results.append(c)
        assert results and results[-1] == doc["target"]
        assert doc["rationale"].endswith(f"The answer is {doc['target']}.")


def test_gold_rationales_score_correct_and_others_do_not():
    docs = generate("test")[:20]
    answers = utils.extract_answers([[d["rationale"], "no idea"] for d in docs], docs)
    for doc, (gold, junk) in zip(docs, answers):
        assert utils.process_results(doc, [[gold, junk]]) == {"exact_match": 1.0, "overall_correct": 0.5}


def test_data_files_are_written_once(tmp_path):
    files = data_files(tmp_path)
    first = {k: open(v).read() for k, v in files.items()}
    again = data_files(tmp_path)
    assert files == again and {k: open(v).read() for k, v in again.items()} == first
    assert first["test"].count("\n") == 200
