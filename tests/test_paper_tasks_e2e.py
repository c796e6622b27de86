"""The paper's tasks end to end through launch.py on the embedded model and the real data."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from conftest import launch, shared_data
from sss.evaluation.answers import INVALID

pytestmark = pytest.mark.slow


def the_run(root: Path) -> Path:
    (manifest,) = [p for p in root.rglob("manifest.json") if ".hydra" not in p.parts]
    run = manifest.parent
    assert (run / "DONE").is_file() and json.loads(manifest.read_text())["status"] == "done"
    return run


def recomputed(samples: pd.DataFrame, repeats: int) -> dict[str, float]:
    """The headline metrics straight from samples.parquet, written independently of sss."""
    per_question = []
    for _, group in samples.sort_values("repeat").groupby(["lm_eval_task", "doc_id"]):
        answers, correct = list(group["answer"]), list(group["correct"])
        votes = Counter(a for a in answers if a != INVALID)
        if votes:
            best = max(votes.values())
            winner = next(a for a in answers if votes.get(a) == best)
            maj = bool(group["correct"][group["answer"] == winner].iloc[0])
        else:
            maj = False
        per_question.append(
            {
                "accuracy": correct[0],
                "overall_correct": sum(correct) / len(correct),
                f"maj@{repeats}": maj,
                f"pass@{repeats}": any(correct),
                "unique_answers": len(votes),
            }
        )
    table = pd.DataFrame(per_question)
    return {name: float(table[name].mean()) for name in table.columns}


def check_metrics_agree(run: Path, repeats: int) -> tuple[dict, pd.DataFrame]:
    metrics = json.loads((run / "metrics.json").read_text())
    samples = pd.read_parquet(run / "samples.parquet")
    assert len(samples) == metrics["n_docs"] * repeats
    assert samples.groupby(["lm_eval_task", "doc_id"]).size().eq(repeats).all()
    for name, value in recomputed(samples, repeats).items():
        assert metrics["metrics"][name] == pytest.approx(value), name
    # every maj@k and pass@k up to the number of repeats is reported
    ks = [k for k in (1, 2, 4, 8, 16, 32) if k <= repeats]
    assert all(f"maj@{k}" in metrics["metrics"] and f"pass@{k}" in metrics["metrics"] for k in ks)
    # lm-eval's own first-sample accuracy agrees, task by task
    for task, results in metrics["lm_eval"]["results"].items():
        first = samples[(samples["lm_eval_task"] == task) & (samples["repeat"] == 0)]
        assert results["exact_match,answers"] == pytest.approx(first["correct"].mean())
    return metrics, samples


def test_gsm8k_with_repeats_and_min_p(tmp_path):
    test = shared_data("gsm8k", "test.jsonl")
    result = launch(
        "task=gsm8k_cot",
        f"task.data_files={test}",
        "task.limit=6",
        "task.repeats=4",
        "sampler=min_p",
        "task.max_gen_toks=64",
        f"output_root={tmp_path}",
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = the_run(tmp_path)
    metrics, samples = check_metrics_agree(run, repeats=4)
    assert metrics["n_docs"] == 6 and metrics["task"] == "gsm8k_cot"
    # each repeat has its own seed, so the samples of a question differ
    assert samples["seed"].nunique() == 24
    assert samples.groupby("doc_id")["response"].nunique().max() > 1
    # the generation settings of the run are recorded in what ran
    (task_yaml,) = (run / "lm_eval_tasks").glob("*.yaml")
    text = task_yaml.read_text()
    assert "max_gen_toks: 64" in text and "repeats: 4" in text and "num_fewshot: 5" in text
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["generation"] == {
        "num_fewshot": 5,
        "repeats": 4,
        "max_gen_toks": 64,
        "stop": ["Question:", "</s>", "<|im_end|>", "<|endoftext|>"],
        "chat_template": False,
    }
    assert samples["prompt"].str.startswith("Question: Natalia sold clips").all()
    docs = [json.loads(line) for line in test.read_text().splitlines()[:6]]
    assert list(samples.drop_duplicates("doc_id")["target"]) == [
        d["answer"].split("####")[-1].strip().replace(",", "") for d in docs
    ]


# four BBH tasks of different answer kinds (every one of the 27 loads in test_bbh_task.py)
BBH_SOME = ["date_understanding", "sports_understanding", "dyck_languages", "object_counting"]


def test_bbh_tasks_from_a_local_folder_with_repeats(tmp_path):
    data = shared_data("bbh")
    result = launch(
        "task=bbh_cot",
        f"task.data_dir={data}",
        f"task.subtasks=[{','.join(BBH_SOME)}]",
        "task.limit=2",
        "task.repeats=2",
        "task.max_gen_toks=48",
        f"output_root={tmp_path}",
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = the_run(tmp_path)
    metrics, samples = check_metrics_agree(run, repeats=2)
    assert metrics["n_docs"] == 8 and samples["lm_eval_task"].nunique() == 4
    assert len(list((run / "lm_eval_tasks").glob("*.yaml"))) == 4
    assert set(metrics["by_task"]) == set(samples["lm_eval_task"])
    for task, values in metrics["by_task"].items():
        assert values["accuracy"] == pytest.approx(samples.loc[samples["lm_eval_task"] == task, "correct"].mean())
    # targets are the normalised BBH targets of the first question of each task
    first = json.loads((data / "tasks" / "date_understanding.json").read_text())["examples"][0]
    row = samples[samples["lm_eval_task"] == "sss_bbh_cot_date_understanding"].iloc[0]
    assert row["target"] == first["target"]
