"""mmlu_pro_cot: answer extraction, the per-category lm-eval configs loaded by lm-eval offline
(hand-written fixture questions in the hub's fields, tests/data/mmlu_pro), config errors, and
one run end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from conftest import ROOT, assert_refused, launch
from sss.evaluation.answers import INVALID
from sss.evaluation.tasks import TASKS, TaskConfigError, lm_eval_configs, write_task_yamls
from sss.evaluation.tasks.local_tables import read_table
from sss.evaluation.tasks.mmlu_pro import SUBJECTS, utils

DATA = ROOT / "tests" / "data" / "mmlu_pro"


def task_cfg(**overrides) -> dict:
    cfg = {
        "name": "mmlu_pro_cot",
        "limit": None,
        "repeats": 1,
        "num_fewshot": 5,
        "max_gen_toks": 16,
        "stop": ["Question:"],
        "chat_template": False,
        "data_files": None,
        "data_dir": str(DATA),
        "subjects": ["math", "computer_science"],
    }
    return {**cfg, **overrides}


def load_tasks(cfg: dict, folder: Path, edit=None) -> dict:
    """The run's lm-eval configs as written into a run dir, loaded by lm-eval itself."""
    # a run loads its YAMLs by path too; lm-eval's own tasks need no index here (15 s each)
    from lm_eval.tasks import TaskManager

    # loaded by path, like a run loads them; lm-eval's own tasks need not be indexed (15 s)

    TASKS["mmlu_pro_cot"].validate(cfg)
    configs = lm_eval_configs(cfg, folder / "cache")
    for config in configs.values():
        (edit or (lambda c: None))(config)
    paths = write_task_yamls(folder / "lm_eval_tasks", configs)
    return TaskManager(include_defaults=False).load([str(p) for p in paths])["tasks"]


def first_prompt(task) -> str:
    task.build_all_requests(limit=1, rank=0, world_size=1)
    return task.instances[0].args[0]


def hub_layout(folder: Path) -> Path:
    """The fixture as the hub repository lays it out: data/<split>-00000-of-00001.parquet and
    a dataset card whose configs name the splits' files."""
    (folder / "data").mkdir(parents=True)
    (folder / "README.md").write_text(
        "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: test\n    path: data/test-*\n"
        "  - split: validation\n    path: data/validation-*\n---\n"
    )
    for split in ("test", "validation"):
        pq.write_table(read_table(DATA / f"{split}.jsonl"), folder / "data" / f"{split}-00000-of-00001.parquet")
    return folder


# ---------------------------------------------------------------- extraction
@pytest.mark.parametrize(
    "response, expected",
    [
        ("7 is option B. The answer is (B).", "B"),
        ("So the answer is C", "C"),
        ("The answer is: (J)", "J"),
        ("Answer is **(D)**", "D"),
        ("the answer is (A) because ... but the answer is (B).", "A"),  # the first statement counts
        ("the answer is Carbon.", INVALID),  # a word, not a letter
        ("the answer is (K).", INVALID),  # only A-J exist
        ("the answer is (c).", INVALID),  # letters are upper case
        ("Answer: (E)", "E"),  # fallback: "Answer: (X)"
        ("Working...\nAnswer: F\n", "F"),  # fallback: a bare letter ending its line
        ("Answer: A bird cannot fly.", INVALID),  # "A" is a word here
        ("I am not sure.", INVALID),
    ],
)
def test_extract_answer(response, expected):
    assert utils.extract_answer(response) == expected


def test_exemplar_answers_end_with_their_letter():
    rows = [json.loads(line) for line in (DATA / "validation.jsonl").read_text().splitlines()]
    for row in rows:
        target = utils.exemplar_answer(row)
        assert not target.startswith("A:") and utils.extract_answer(target) == row["answer"]
    # an exemplar whose chain of thought states no answer gets one appended
    (python_comment,) = [r for r in rows if r["question_id"] == 6]
    assert utils.exemplar_answer(python_comment).endswith("hash sign. The answer is (B).")


def test_scoring_keeps_every_repeat():
    doc = {"answer": "B"}
    answers = utils.extract_answers([["The answer is (B).", "The answer is (C).", "?"]], [doc])
    assert answers == [["B", "C", INVALID]]
    assert utils.process_results(doc, answers) == {"exact_match": 1.0, "overall_correct": 1 / 3}
    assert not utils.is_correct(INVALID, {"answer": INVALID})


# ---------------------------------------------------------------- lm-eval configs
@pytest.fixture(scope="module")
def jsonl_tasks(tmp_path_factory):
    return load_tasks(task_cfg(), tmp_path_factory.mktemp("jsonl"))


def test_one_lm_eval_task_per_category_with_its_own_questions_and_exemplars(jsonl_tasks):
    assert sorted(jsonl_tasks) == ["sss_mmlu_pro_cot_computer_science", "sss_mmlu_pro_cot_math"]
    ids = {name: [d["question_id"] for d in task.test_docs()] for name, task in jsonl_tasks.items()}
    shots = {name: [d["question_id"] for d in task.fewshot_docs()] for name, task in jsonl_tasks.items()}
    assert ids == {"sss_mmlu_pro_cot_math": [101, 103], "sss_mmlu_pro_cot_computer_science": [102, 104]}
    assert shots == {"sss_mmlu_pro_cot_math": [1, 3, 5, 7, 9], "sss_mmlu_pro_cot_computer_science": [2, 4, 6, 8, 10]}


def test_first_prompt_has_the_categorys_exemplars_in_order(jsonl_tasks):
    prompt = first_prompt(jsonl_tasks["sss_mmlu_pro_cot_math"])
    assert prompt.startswith("The following are multiple choice questions (with answers) about math. ")
    questions = [line for line in prompt.splitlines() if line.startswith("Question: ")]
    assert questions == [
        "Question: What is 3 + 4?",
        "Question: What is 10 divided by 2?",
        "Question: What is 2 to the power 5?",
        "Question: What is 9 minus 11?",
        "Question: What is the square root of 81?",
        "Question: What is 6 times 7?",
    ]
    assert prompt.count("Answer: Let's think step by step.") == 6
    assert prompt.endswith("(I) 43\n(J) 44\nAnswer: Let's think step by step.")


def test_first_prompt_is_exactly_the_mmlu_pro_cot_layout(tmp_path):
    tasks = load_tasks(task_cfg(num_fewshot=2, subjects=["computer_science"]), tmp_path)
    assert first_prompt(tasks["sss_mmlu_pro_cot_computer_science"]) == (
        "The following are multiple choice questions (with answers) about computer science. "
        'Think step by step, then end with "The answer is (X)", where X is the letter of the '
        "correct option.\n\n"
        "Question: Which data structure serves items in first-in, first-out order?\n"
        "Options:\n(A) stack\n(B) queue\n(C) heap\n(D) tree\n"
        "Answer: Let's think step by step. A queue removes the oldest item first. The answer is (B).\n\n"
        "Question: How many bits are in one byte?\n"
        "Options:\n(A) 4\n(B) 8\n(C) 16\n(D) 32\n"
        "Answer: Let's think step by step. A byte is eight bits. The answer is (B).\n\n"
        "Question: Which of these is a compiled language?\n"
        "Options:\n(A) C\n(B) Bash\n(C) Python\n(D) JavaScript\n"
        "Answer: Let's think step by step."
    )


def test_run_settings_reach_lm_eval(jsonl_tasks):
    config = jsonl_tasks["sss_mmlu_pro_cot_math"].config
    assert config.repeats == 1 and config.num_fewshot == 5
    assert config.generation_kwargs == {"until": ["Question:"], "max_gen_toks": 16}


def test_hub_config_loads_a_repository_laid_out_like_the_hub(tmp_path):
    """Without data_dir the run loads TIGER-Lab/MMLU-Pro; the same config, pointed at a local
    folder laid out like that repository, shows the category filter reaches the loader."""
    repo = hub_layout(tmp_path / "repo")
    configs = lm_eval_configs(task_cfg(data_dir=None, subjects=["math"]), tmp_path / "cache")
    assert configs["sss_mmlu_pro_cot_math"]["dataset_kwargs"] == {"filters": [["category", "==", "math"]]}
    assert "dataset_path" not in configs["sss_mmlu_pro_cot_math"]  # the shipped YAML's hub path
    tasks = load_tasks(
        task_cfg(data_dir=None, subjects=["math"]), tmp_path, edit=lambda c: c.update(dataset_path=str(repo))
    )
    task = tasks["sss_mmlu_pro_cot_math"]
    assert [d["question_id"] for d in task.test_docs()] == [101, 103]
    assert [d["question_id"] for d in task.fewshot_docs()] == [1, 3, 5, 7, 9]


def test_local_parquet_layout_gives_the_same_prompt(tmp_path, jsonl_tasks):
    repo = hub_layout(tmp_path / "repo")
    tasks = load_tasks(task_cfg(data_dir=str(repo), subjects=["math"]), tmp_path)
    assert first_prompt(tasks["sss_mmlu_pro_cot_math"]) == first_prompt(jsonl_tasks["sss_mmlu_pro_cot_math"])


def test_subjects_default_to_all_14_categories(tmp_path):
    configs = lm_eval_configs(task_cfg(data_dir=None, subjects=None), tmp_path)
    assert list(configs) == [f"sss_mmlu_pro_cot_{s}" for s in SUBJECTS] and len(configs) == 14
    assert configs["sss_mmlu_pro_cot_computer_science"]["dataset_kwargs"]["filters"] == [
        ["category", "==", "computer science"]
    ]


def test_jsonl_is_converted_once(tmp_path):
    lm_eval_configs(task_cfg(), tmp_path)
    first = {p: p.stat().st_mtime_ns for p in (tmp_path / "mmlu_pro").iterdir()}
    lm_eval_configs(task_cfg(), tmp_path)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "mmlu_pro").iterdir()} == first
    assert len(first) == 2 and all(p.suffix == ".parquet" for p in first)


# ---------------------------------------------------------------- config errors
@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"subjects": ["chem"]}, ["task.subjects = ['chem']", "computer_science"]),
        ({"subjects": []}, ["task.subjects = []", "non-empty list"]),
        ({"subjects": ["math", "math"]}, ["each category once"]),
        ({"subjects": None}, ["task.subjects = None", "['computer_science', 'math']", "'biology'"]),
        ({"num_fewshot": 6}, ["task.num_fewshot = 6", "at most 5"]),
        ({"data_files": str(DATA / "test.jsonl"), "data_dir": None}, ["task.data_files", "validation split"]),
    ],
)
def test_bad_configs_name_the_key_and_what_is_allowed(overrides, words):
    with pytest.raises(TaskConfigError) as error:
        TASKS["mmlu_pro_cot"].validate(task_cfg(**overrides))
    for word in words:
        assert word in str(error.value)


def test_unreadable_or_incomplete_local_files_are_errors(tmp_path):
    (tmp_path / "test.jsonl").write_text("{not json\n")
    shutil.copy(DATA / "validation.jsonl", tmp_path)
    with pytest.raises(TaskConfigError, match=r"task.data_dir = .*readable MMLU-Pro files \(test.jsonl"):
        TASKS["mmlu_pro_cot"].validate(task_cfg(data_dir=str(tmp_path)))
    (tmp_path / "test.jsonl").write_text('{"question": "q", "options": ["a"], "answer": "A"}\n')
    with pytest.raises(TaskConfigError, match=r"test.jsonl lacks \['category'\]"):
        TASKS["mmlu_pro_cot"].validate(task_cfg(data_dir=str(tmp_path)))


def test_fewer_local_exemplars_than_shots_is_an_error(tmp_path):
    folder = tmp_path / "few"
    folder.mkdir()
    shutil.copy(DATA / "test.jsonl", folder)
    lines = (DATA / "validation.jsonl").read_text().splitlines()
    (folder / "validation.jsonl").write_text("\n".join(lines[:6]) + "\n")  # math: 3, cs: 3
    with pytest.raises(TaskConfigError, match=r"task.num_fewshot = 5 .*at most 3"):
        TASKS["mmlu_pro_cot"].validate(task_cfg(data_dir=str(folder)))
    TASKS["mmlu_pro_cot"].validate(task_cfg(data_dir=str(folder), num_fewshot=3))


@pytest.mark.parametrize(
    "overrides, words",
    [
        (["task.data_dir=tests/data"], ["task.data_dir = 'tests/data'", "no test file found"]),
        (["task.subjects=[math,chem]", "task.data_dir=tests/data/mmlu_pro"], ["task.subjects = ['chem']"]),
        (["task.num_fewshot=6"], ["task.num_fewshot = 6", "at most 5"]),
        (
            ["task.data_files=tests/data/mmlu_pro/test.jsonl", "task.data_dir=tests/data/mmlu_pro"],
            ["task.data_files", "not both"],
        ),
    ],
)
def test_launch_rejects_bad_configs_before_loading_a_model(tmp_path, overrides, words):
    assert_refused(launch("task=mmlu_pro_cot", *overrides, f"output_root={tmp_path}"), *words)


# ---------------------------------------------------------------- end to end
@pytest.mark.slow
def test_launch_end_to_end_on_the_fixture(tmp_path):
    result = launch(
        "task=mmlu_pro_cot",
        f"task.data_dir={DATA}",
        "task.subjects=[math,computer_science]",
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
    # limit counts per category: 1 question x 2 categories x 2 repeats
    assert len(samples) == 4 and metrics["n_docs"] == 2
    assert sorted(samples["lm_eval_task"].unique()) == ["sss_mmlu_pro_cot_computer_science", "sss_mmlu_pro_cot_math"]
    assert sorted(samples["target"]) == ["A", "A", "B", "B"]
    assert list(samples["answer"]) == [utils.extract_answer(r) for r in samples["response"]]
    assert list(samples["correct"]) == [a == t for a, t in zip(samples["answer"], samples["target"])]
    first = samples[samples["repeat"] == 0]
    assert metrics["metrics"]["accuracy"] == pytest.approx(first["correct"].mean())
    assert metrics["metrics"]["overall_correct"] == pytest.approx(samples["correct"].mean())
    assert set(metrics["by_task"]) == set(samples["lm_eval_task"])
    assert all(p.endswith("Answer: Let's think step by step.") for p in samples["prompt"])
