"""task.prompt=paper end to end through launch.py on the embedded model and real GSM8K: the
model saw the paper's context (lm-eval's own rendering of the paper's task), and metrics.json
holds both metric sets, the paper's equal to lm-eval's filter chain run on the samples."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import launch, shared_data
from test_paper_prompts import LM_EVAL_TASKS, contexts, local_json, reference_tasks
from test_paper_scoring import lm_eval_question
from test_paper_tasks_e2e import check_metrics_agree, the_run

pytestmark = pytest.mark.slow


def test_gsm8k_paper_run_records_both_metric_sets(tmp_path):
    test = shared_data("gsm8k", "test.jsonl")
    repeats = 4
    result = launch(
        "task=gsm8k_cot",
        "task.prompt=paper",
        f"task.data_files={test}",
        "task.limit=2",
        f"task.repeats={repeats}",
        "task.max_gen_toks=48",
        f"output_root={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = the_run(tmp_path)
    metrics, samples = check_metrics_agree(run, repeats)  # sss's own metrics, as for every task

    reference = reference_tasks(
        {
            "paper_gsm8k": {
                "include": str(LM_EVAL_TASKS / "gsm8k" / "gsm8k-cot.yaml"),
                "doc_to_text": "Question: {{question}}\n Answer: ",
                "num_fewshot": 5,
                **local_json(test),
            }
        },
        tmp_path / "ref",
    )["paper_gsm8k"]
    expected_prompts = contexts(reference, 2)
    for row in samples.itertuples():
        assert row.prompt == expected_prompts[row.doc_id]
        assert (
            row.reference == json.loads(test.read_text().splitlines()[row.doc_id])["answer"].split("####")[-1].strip()
        )

    per_question = [
        lm_eval_question(list(group.sort_values("repeat")["response"]), group["reference"].iloc[0], "gsm8k_cot")
        for _, group in samples.groupby("doc_id")
    ]
    expected = pd.DataFrame(per_question).mean().to_dict()
    assert set(metrics["paper"]["metrics"]) == set(expected)
    for name, value in expected.items():
        assert metrics["paper"]["metrics"][name] == pytest.approx(value), name
