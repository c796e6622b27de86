"""aime24 / aime25: both hub field spellings in one schema, the 0-shot prompt loaded by lm-eval
offline (hand-written fixture problems, tests/data/aime), scoring, config errors, one run end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from conftest import ROOT, assert_refused, launch
from sss.evaluation.answers import INVALID
from sss.evaluation.math_answers import extract_math_answer
from sss.evaluation.tasks import TASKS, TaskConfigError, lm_eval_configs, write_task_yamls
from sss.evaluation.tasks.aime import HUB, utils
from sss.evaluation.tasks.local_tables import read_table

DATA = ROOT / "tests" / "data" / "aime"
AIME24 = DATA / "aime24.jsonl"  # Maxwell-Jia/AIME_2024 fields: ID, Problem, Solution, Answer
AIME25 = DATA / "aime25"  # math-ai/aime25 layout: test.jsonl with id, problem, answer


def task_cfg(name: str, **overrides) -> dict:
    cfg = {
        "name": name,
        "limit": None,
        "repeats": 1,
        "num_fewshot": 0,
        "max_gen_toks": 16,
        "stop": ["Question:"],
        "chat_template": False,
        "data_files": None,
        "data_dir": None,
    }
    return {**cfg, **overrides}


def load_task(cfg: dict, folder: Path):
    # a run loads its YAMLs by path too; lm-eval's own tasks need no index here (15 s each)
    from lm_eval.tasks import TaskManager

    # loaded by path, like a run loads them; lm-eval's own tasks need not be indexed (15 s)

    TASKS[cfg["name"]].validate(cfg)
    paths = write_task_yamls(folder, lm_eval_configs(cfg, folder / "cache"))
    (task,) = TaskManager(include_defaults=False).load([str(p) for p in paths])["tasks"].values()
    return task


def prompts(task) -> list[str]:
    task.build_all_requests(limit=None, rank=0, world_size=1)
    return [instance.args[0] for instance in task.instances]


# ---------------------------------------------------------------- lm-eval configs
def test_aime24_fields_from_a_local_file(tmp_path):
    task = load_task(task_cfg("aime24", data_files=str(AIME24)), tmp_path)
    assert task.config.task == "sss_aime24" and task.config.repeats == 1
    docs = list(task.test_docs())
    assert docs[2] == {
        "id": "sss-I-3",
        "problem": "Find the remainder when $2^{10}$ is divided by $1000$.",
        "answer": "24",
    }
    assert (
        prompts(task)[0]
        == "Question: Find the number of positive integers less than 100 that are divisible by 7.\nAnswer:"
    )


def test_aime25_fields_from_a_local_folder(tmp_path):
    task = load_task(task_cfg("aime25", data_dir=str(AIME25)), tmp_path)
    assert [d["answer"] for d in task.test_docs()] == ["400", "9"]
    assert prompts(task) == [
        "Question: Find the sum of the first $20$ positive odd integers.\nAnswer:",
        "Question: How many ordered pairs $(a,b)$ of positive integers satisfy $a + b = 10$?\nAnswer:",
    ]


def test_a_hub_snapshot_folder_with_its_parquet_file(tmp_path):
    """A local copy of Maxwell-Jia/AIME_2024: one Parquet file, integer answers."""
    snapshot = tmp_path / "AIME_2024"
    snapshot.mkdir()
    pq.write_table(read_table(AIME24), snapshot / "aime_2024_problems.parquet")
    (snapshot / "README.md").write_text("not data\n")
    task = load_task(task_cfg("aime24", data_dir=str(snapshot)), tmp_path / "run")
    assert [d["answer"] for d in task.test_docs()] == ["14", "34", "24"]


def test_hub_sources_and_run_settings(tmp_path):
    (config,) = lm_eval_configs(task_cfg("aime25", max_gen_toks=81920, repeats=32), tmp_path).values()
    assert config["dataset_path"] == "math-ai/aime25" and config["test_split"] == "test"
    assert config["repeats"] == 32 and config["generation_kwargs"]["max_gen_toks"] == 81920
    (config,) = lm_eval_configs(task_cfg("aime24"), tmp_path).values()
    assert config["dataset_path"] == "Maxwell-Jia/AIME_2024" and config["test_split"] == "train"
    assert set(HUB) == {"aime24", "aime25"} and {"aime24", "aime25"} <= set(TASKS)


def test_the_shipped_defaults(tmp_path):
    import yaml

    for name in ("aime24", "aime25"):
        cfg = yaml.safe_load((ROOT / "conf" / "task" / f"{name}.yaml").read_text())
        assert cfg["name"] == name and cfg["num_fewshot"] == 0 and cfg["max_gen_toks"] == 32768
        assert "Question:" in cfg["stop"]
        TASKS[name].validate(cfg)


# ---------------------------------------------------------------- scoring
def test_gold_solutions_score_correct():
    for line in AIME24.read_text().splitlines():
        row = json.loads(line)
        doc = {"id": row["ID"], "problem": row["Problem"], "answer": str(row["Answer"])}
        answer = extract_math_answer(row["Solution"])
        assert utils.is_correct(answer, doc), (answer, doc)


def test_repeats_are_kept_and_scored():
    doc = {"answer": "24"}
    responses = [[r"so \boxed{024}.", r"\boxed{25}", "The answer is 24.", "no idea"]]
    answers = utils.extract_answers(responses, [doc])
    assert answers == [["24", "25", "24", INVALID]]
    assert utils.process_results(doc, answers) == {"exact_match": 1.0, "overall_correct": 0.5}
    assert utils.target_of({"answer": "033"}) == "33"


def test_process_docs_needs_problem_and_answer():
    import datasets

    with pytest.raises(KeyError, match="problem/Problem and answer/Answer"):
        utils.process_docs(datasets.Dataset.from_list([{"question": "q", "answer": "1"}]))
    no_ids = utils.process_docs(datasets.Dataset.from_list([{"problem": "p", "answer": 7}]))
    assert list(no_ids) == [{"id": "0", "problem": "p", "answer": "7"}]


# ---------------------------------------------------------------- config errors
@pytest.mark.parametrize(
    "name, overrides, words",
    [
        ("aime24", {"num_fewshot": 1}, ["task.num_fewshot = 1", "at most 0"]),
        ("aime25", {"data_dir": str(DATA / "empty")}, ["task.data_dir", "an existing local folder"]),
        (
            "aime25",
            {"data_files": str(ROOT / "tests" / "data" / "mmlu_pro" / "test.jsonl")},
            ["task.data_files", "lacks ['problem']"],
        ),
        (
            "aime24",
            {"data_dir": str(ROOT / "tests" / "data" / "mmlu_pro")},
            ["task.data_dir", "found ['test.jsonl', 'validation.jsonl']"],
        ),
    ],
)
def test_bad_configs_name_the_key_and_what_is_allowed(name, overrides, words):
    with pytest.raises(TaskConfigError) as error:
        TASKS[name].validate(task_cfg(name, **overrides))
    for word in words:
        assert word in str(error.value)


@pytest.mark.parametrize(
    "overrides, words",
    [
        (["task=aime24", "task.num_fewshot=3"], ["task.num_fewshot = 3", "at most 0"]),
        (["task=aime25", "task.data_files=tests/data/mmlu_pro/test.jsonl"], ["task.data_files", "problem/Problem"]),
        (["task=aime25", f"task.data_files={AIME24}", f"task.data_dir={AIME25}"], ["not both"]),
    ],
)
def test_launch_rejects_bad_configs_before_loading_a_model(tmp_path, overrides, words):
    assert_refused(launch(*overrides, f"output_root={tmp_path}"), *words)


# ---------------------------------------------------------------- end to end
@pytest.mark.slow
def test_launch_end_to_end_on_the_fixture(tmp_path):
    result = launch(
        "task=aime24",
        f"task.data_files={AIME24}",
        "task.limit=1",
        "task.max_gen_toks=24",
        "task.repeats=2",
        f"output_root={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (done,) = list(tmp_path.rglob("DONE"))
    run = done.parent
    samples = pd.read_parquet(run / "samples.parquet")
    metrics = json.loads((run / "metrics.json").read_text())
    assert len(samples) == 2 and metrics["n_docs"] == 1 and metrics["repeats"] == 2
    assert list(samples["target"]) == ["14", "14"]
    assert list(samples["answer"]) == [extract_math_answer(r) for r in samples["response"]]
    assert list(samples["correct"]) == [a == "14" for a in samples["answer"]]
    assert all(
        p == "Question: Find the number of positive integers less than 100 that are divisible by 7.\nAnswer:"
        for p in samples["prompt"]
    )
    assert metrics["metrics"]["accuracy"] == pytest.approx(float(samples["correct"].iloc[0]))
    assert metrics["metrics"]["overall_correct"] == pytest.approx(samples["correct"].mean())
    assert metrics["lm_eval"]["results"]["sss_aime24"]["overall_correct,answers"] == pytest.approx(
        samples["correct"].mean()
    )
    assert (samples["new_tokens"] <= 24).all()
