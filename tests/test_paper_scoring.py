"""The paper's scoring chain (sss/evaluation/paper_scoring.py, metrics.paper_*) against lm-eval's
own filter classes and exact-match metric run on the same responses, with the regexes and
metric settings of the paper's task YAMLs (transcribed below as YAML, the form they were
written in); and job=analyze rescoring an old run from its samples alone."""

from __future__ import annotations

import json
import random

import pandas as pd
import pytest
import yaml
from lm_eval.api.metrics import exact_match_hf_evaluate
from lm_eval.filters.extraction import RegexFilter
from lm_eval.filters.selection import MajorityVoteFilter, TakeFirstFilter, TakeKFilter

from sss.evaluation.answers import INVALID
from sss.evaluation.metrics import k_values, paper_question_metrics, question_metrics
from sss.evaluation.records import paper_rules, scores

# The regex and exact_match settings of the paper's task YAMLs (eval/maths/gsm8k_fewshot.yaml,
# eval/bbh_cot_fewshot/_cot_fewshot_template_yaml, eval/mmlu_pro/_default_template_yaml).
PAPER_YAML = {
    "gsm8k_cot": r"""
regex_pattern: (?<=[Tt]he answer is )[^.\\]+
metric:
  ignore_case: true
  ignore_punctuation: false
  regexes_to_ignore:
    - ","
    - "\\$"
    - "(?s).*#### "
    - "\\.$"
    - "\\\\boxed\\{"
    - "\\}\\$"
    - "\\{|\\}"
    - ":"
    - "\\s+"
    - "[a-zA-Z]+"
    - "\\\\[\\(\\)]"
    - "\\\\[\\[\\]]"
    - "\\\\"
""",
    "bbh_cot": r"""
regex_pattern: "(?<=the answer is )(.*)(?=.)"
metric:
  ignore_case: true
  ignore_punctuation: true
""",
    "mmlu_pro_cot": r"""
regex_pattern: 'answer is \(?([ABCDEFGHIJ])\)?'
metric:
  ignore_case: true
  ignore_punctuation: true
""",
}


def paper_yaml(task: str) -> dict:
    return yaml.safe_load(PAPER_YAML[task])


def lm_eval_extract(responses: list[str], regex: str) -> list[str]:
    return RegexFilter(regex_pattern=regex).apply([responses], [{}])[0]


def lm_eval_exact(prediction: str, reference: str, metric: dict) -> bool:
    return bool(exact_match_hf_evaluate([prediction], [reference], **metric)["exact_match"])


def lm_eval_maj(responses: list[str], reference: str, task: str, k: int) -> bool:
    """The paper's maj@k filter: take_first_k -> regex -> majority_vote -> take_first, then
    exact_match, each step lm-eval's own."""
    spec = paper_yaml(task)
    resps = TakeKFilter(k=k).apply([responses], [{}])
    resps = RegexFilter(regex_pattern=spec["regex_pattern"]).apply(resps, [{}])
    resps = MajorityVoteFilter().apply(resps, [{}])
    (voted,) = list(TakeFirstFilter().apply(resps, [{}]))
    return lm_eval_exact(voted, reference, spec["metric"])


def lm_eval_question(responses: list[str], reference: str, task: str) -> dict[str, float]:
    """Every paper metric of one question from lm-eval's pieces: score-first (regex ->
    take_first), maj@k, and per-sample exact match for pass@k (oracle), overall and unique."""
    spec = paper_yaml(task)
    extracted = lm_eval_extract(responses, spec["regex_pattern"])
    first = list(TakeFirstFilter().apply([extracted], [{}]))[0]
    correct = [lm_eval_exact(e, reference, spec["metric"]) for e in extracted]
    out = {
        "accuracy": float(lm_eval_exact(first, reference, spec["metric"])),
        "overall_correct": sum(correct) / len(correct),
        "unique_answers": float(len(set(extracted))),
    }
    for k in k_values(len(responses)):
        out[f"maj@{k}"] = float(lm_eval_maj(responses, reference, task, k))
        out[f"pass@{k}"] = float(any(correct[:k]))
    return out


def gsm8k_pool(target: str, wrong: str) -> list[str]:
    return [
        f"3 + 15 = 18. The answer is {target}.",
        f"The answer is ${target}.",
        f"So the answer is {target} dollars.",
        f"The answer is {wrong}.",
        "I cannot tell.",
        f"The answer is \\boxed{{{target}}}.",
        f"the answer is: {target}\nQuestion: next",
        f"The answer is {target}",
        f"The answer is {wrong}.5 apples.",
        f"The answer is {target},000.",
        "The answer is .",
        f"Step one.\nThe answer is {target}. The answer is {wrong}.",
    ]


def bbh_pool(target: str, wrong: str) -> list[str]:
    return [
        f"So the answer is {target}.",
        f"So the answer is {target}",
        f"So the answer is {wrong}.",
        f"so the answer is {target.lower()}.",
        f"The answer is {target}.",
        "No idea.",
        f"So the answer is {target} because.",
        f"the answer is **{target}**.",
        f"the answer is {target}.\nthe answer is {wrong}.",
    ]


def mmlu_pool(target: str, wrong: str) -> list[str]:
    return [
        f"The answer is ({target}).",
        f"the answer is {target}",
        f"The answer is ({wrong}).",
        f"Answer is ({target})",
        f"The answer is {target.lower()}.",
        "Hmm.",
        f"the answer is ({target}) and the answer is ({wrong})",
        f"Answer: {target}",
    ]


CASES = {
    "gsm8k_cot": (gsm8k_pool, [("18", "19"), ("1234", "1243"), ("-3", "3"), ("0.5", "5"), ("1,234", "1,243")]),
    "bbh_cot": (
        bbh_pool,
        [("(A)", "(B)"), ("True", "False"), ("Yes", "No"), ("valid", "invalid"), ("12", "13"), ("] ) }", "] }")],
    ),
    "mmlu_pro_cot": (mmlu_pool, [("B", "C"), ("J", "A")]),
}


@pytest.mark.parametrize("task", sorted(CASES))
def test_paper_chain_equals_lm_evals_filters_and_metric(task):
    pool_of, targets = CASES[task]
    rules = paper_rules(task)
    assert rules.regex == paper_yaml(task)["regex_pattern"]
    rng = random.Random(0)
    checked = 0
    for target, wrong in targets:
        pool = pool_of(target, wrong)
        for _ in range(60):
            n = rng.choice([1, 3, 4, 8])
            # few distinct responses per question, so votes tie and invalid answers can win
            responses = [rng.choice(pool[: rng.randint(2, len(pool))]) for _ in range(n)]
            extracted = [rules.extract(r) for r in responses]
            assert extracted == lm_eval_extract(responses, rules.regex)
            expected = lm_eval_question(responses, target, task)
            assert paper_question_metrics(extracted, target, rules) == expected
            checked += 1
    assert checked == 60 * len(targets)


def test_the_papers_vote_differs_from_sss_where_the_issue_says():
    rules = paper_rules("gsm8k_cot")
    # invalid answers vote and can win
    responses = ["no answer here", "none either", "The answer is 18."]
    extracted = [rules.extract(r) for r in responses]
    assert extracted == [INVALID, INVALID, "18"]
    paper = paper_question_metrics(extracted, "18", rules)
    assert paper["maj@3"] == 0.0 and paper["pass@3"] == 1.0 and paper["unique_answers"] == 2.0
    own = question_metrics(["[invalid]", "[invalid]", "18"], [False, False, True])
    assert own["maj@3"] == 1.0 and own["unique_answers"] == 1.0
    # "18" and "$18" are different candidates (the tie goes to the first seen, "$18": still
    # correct, exact match ignores "$"); "18 apples" loses its letters but keeps a space
    extracted = [rules.extract(r) for r in ["The answer is $18.", "The answer is 18.", "The answer is 7."]]
    assert extracted == ["$18", "18", "7"]
    assert paper_question_metrics(extracted, "18", rules)["unique_answers"] == 3.0
    outvoted = ["The answer is 7.", "The answer is $18.", "The answer is 18."]
    assert lm_eval_maj(outvoted, "18", "gsm8k_cot", 3) is False


def test_scores_pool_questions_and_keep_tasks_apart():
    rules = paper_rules("bbh_cot")
    rows = []
    questions = (
        ("sss_bbh_cot_navigate", "Yes", ["So the answer is Yes.", "x"]),
        ("sss_bbh_cot_snarks", "(A)", ["So the answer is (B).", "So the answer is (A)."]),
        ("sss_bbh_cot_snarks", "(B)", ["So the answer is (B).", "So the answer is (B)."]),
    )
    for task, target, responses in questions:
        doc_id = sum(r["lm_eval_task"] == task for r in rows) // 2
        for repeat, response in enumerate(responses):
            rows.append(
                {
                    "lm_eval_task": task,
                    "doc_id": doc_id,
                    "repeat": repeat,
                    "response": response,
                    "reference": target,
                    "answer": "x",
                    "correct": False,
                }
            )
    paper = scores(pd.DataFrame(rows), "bbh_cot", "paper")
    assert paper["metrics"]["accuracy"] == pytest.approx(2 / 3)
    assert paper["metrics"]["pass@2"] == 1.0 and paper["metrics"]["overall_correct"] == pytest.approx(4 / 6)
    assert paper["by_task"]["sss_bbh_cot_snarks"]["maj@2"] == pytest.approx(0.5)
    assert rules.extract("x") == INVALID
    assert scores(pd.DataFrame(rows), "arith", "paper") is None


def test_analyze_rescores_an_old_run_from_its_samples(tmp_path):
    from test_analyze import analyze, make_run

    # an old run of gsm8k_cot: metrics.json has no "paper", samples.parquet no paper columns
    run = make_run(
        tmp_path / "runs" / "r0", "temperature", {"temperature": 1.0}, seed=0, metrics={"accuracy": 0.5}, repeats=4
    )
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["task"]["name"] = "gsm8k_cot"
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    questions = {
        0: ("18", ["The answer is 18.", "x", "y", "The answer is $18."]),
        1: ("5", ["The answer is 4.", "The answer is 5.", "The answer is 4.", "The answer is 5."]),
    }
    pd.DataFrame(
        [
            {
                "lm_eval_task": "sss_gsm8k_cot",
                "doc_id": doc_id,
                "repeat": repeat,
                "response": response,
                "answer": "?",
                "target": target,
                "correct": False,
            }
            for doc_id, (target, responses) in questions.items()
            for repeat, response in enumerate(responses)
        ]
    ).to_parquet(run / "samples.parquet")
    expected = [lm_eval_question(responses, target, "gsm8k_cot") for target, responses in questions.values()]

    result = analyze(f"analyze.input={tmp_path / 'runs'}", "analyze.scoring=paper", "analyze.rescore=true")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "HEAVY=[]" in result.stdout  # no model, no lm-eval: the chain is sss's own code
    row = pd.read_csv(tmp_path / "runs" / "analysis" / "runs.csv").iloc[0]
    for name in ("accuracy", "overall_correct", "unique_answers", "maj@2", "maj@4", "pass@1", "pass@4"):
        assert row[name] == pytest.approx(sum(q[name] for q in expected) / 2), name
    # question 0: two invalid answers outvote "18" and "$18"; question 1: "4" and "5" tie 2-2
    # and the first seen ("4") wins; yet each question has a correct sample
    assert row["maj@4"] == 0.0 and row["pass@4"] == 1.0
    report = (tmp_path / "runs" / "analysis" / "report.md").read_text()
    assert "paper scoring, recomputed" in report

    # without rescoring the old run has no paper metrics, and the report says how to get them
    result = analyze(f"analyze.input={tmp_path / 'runs'}", "analyze.scoring=paper")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "analyze.rescore=true" in (tmp_path / "runs" / "analysis" / "report.md").read_text()
    result = analyze(f"analyze.input={tmp_path / 'runs'}", "analyze.scoring=lm_eval")
    assert result.returncode != 0 and "analyze.scoring = 'lm_eval' is not allowed" in result.stderr
    assert json.loads((run / "metrics.json").read_text())["metrics"] == {"accuracy": 0.5}  # untouched
