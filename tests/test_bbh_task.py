"""bbh_cot: BBH's prompts verbatim, answer normalisation, local BBH folders."""

from __future__ import annotations

import json

import pytest

from conftest import assert_refused, launch, shared_data
from sss.evaluation.answers import INVALID
from sss.evaluation.tasks.bbh import ANSWER_CUE, PROMPTS, SUBTASKS, parse_prompt
from sss.evaluation.tasks.bbh import utils
from task_helpers import first_prompt, load_tasks, task_config


def prompt_body(path) -> str:
    """A BBH prompt file without its canary header (what precedes each question)."""
    return path.read_text().split("-----\n", 1)[1].strip("\n")


def test_shipped_prompts_are_bbhs_own():
    folder = shared_data("bbh", "cot-prompts")
    assert set(SUBTASKS) == {p.stem for p in folder.glob("*.txt")} and len(SUBTASKS) == 27
    for name in SUBTASKS:
        assert (PROMPTS / f"{name}.txt").read_text() == (folder / f"{name}.txt").read_text()


@pytest.mark.parametrize("name", SUBTASKS)
def test_parsed_prompts_rebuild_the_file_exactly(name):
    description, shots, separator = parse_prompt((PROMPTS / f"{name}.txt").read_text())
    assert len(shots) == 3 and description
    rebuilt = description + "\n\n" + "\n\n".join(f"Q: {s['input']}\n{ANSWER_CUE}{separator}{s['cot']}" for s in shots)
    assert rebuilt == prompt_body(PROMPTS / f"{name}.txt")
    # each exemplar's reasoning ends in an answer the extractor reads
    assert all(utils.extract_answer(s["cot"]) != INVALID for s in shots)


def test_lm_eval_prompt_is_the_bbh_prompt_then_the_question(tmp_path):
    data = shared_data("bbh")
    cfg = task_config("bbh_cot", data_dir=str(data), subtasks=["sports_understanding", "date_understanding"])
    tasks = load_tasks(cfg, tmp_path)
    assert sorted(tasks) == ["sss_bbh_cot_date_understanding", "sss_bbh_cot_sports_understanding"]
    for name in ("sports_understanding", "date_understanding"):
        task = tasks[f"sss_bbh_cot_{name}"]
        raw = json.loads((data / "tasks" / f"{name}.json").read_text())["examples"]
        assert len(task.test_docs()) == len(raw)
        doc, prompt = first_prompt(task, 3)
        assert doc == raw[0]
        assert prompt == prompt_body(data / "cot-prompts" / f"{name}.txt") + f"\n\nQ: {doc['input']}\n{ANSWER_CUE}"
        assert task.config.generation_kwargs["until"] == ["Q:", "</s>", "\n\n"]


def test_all_27_tasks_load_from_a_local_folder(tmp_path):
    data = shared_data("bbh")
    tasks = load_tasks(task_config("bbh_cot", data_dir=str(data)), tmp_path)
    assert sorted(tasks) == [f"sss_bbh_cot_{name}" for name in SUBTASKS]
    for name in SUBTASKS:
        task = tasks[f"sss_bbh_cot_{name}"]
        raw = json.loads((data / "tasks" / f"{name}.json").read_text())["examples"]
        doc, prompt = first_prompt(task, 3)
        assert len(task.test_docs()) == len(raw) and doc == raw[0]
        assert prompt == prompt_body(data / "cot-prompts" / f"{name}.txt") + f"\n\nQ: {doc['input']}\n{ANSWER_CUE}"


def test_fewer_shots_keep_the_description_and_the_first_exemplars(tmp_path):
    cfg = task_config("bbh_cot", data_dir=str(shared_data("bbh")), subtasks=["navigate"], num_fewshot=1)
    task = load_tasks(cfg, tmp_path)["sss_bbh_cot_navigate"]
    doc, prompt = first_prompt(task, 1)
    description, shots, _ = parse_prompt((PROMPTS / "navigate.txt").read_text())
    assert prompt == (
        f"{description}\n\nQ: {shots[0]['input']}\n{ANSWER_CUE}\n{shots[0]['cot']}\n\nQ: {doc['input']}\n{ANSWER_CUE}"
    )


def test_repository_layout_with_bbh_folder_is_accepted(tmp_path):
    from sss.evaluation.tasks import lm_eval_configs

    src = shared_data("bbh", "tasks", "navigate.json")
    (tmp_path / "bbh").mkdir()
    (tmp_path / "bbh" / "navigate.json").write_text(src.read_text())
    (config,) = lm_eval_configs(
        task_config("bbh_cot", data_dir=str(tmp_path), subtasks=["navigate"]), tmp_path
    ).values()
    assert config["dataset_kwargs"]["data_files"]["test"] == str(tmp_path / "bbh" / "navigate.json")
    assert config["dataset_kwargs"]["field"] == "examples"
    # no cot-prompts/ in the folder: the shipped prompts are used
    assert config["fewshot_config"]["samples"] == parse_prompt((PROMPTS / "navigate.txt").read_text())[1]


def test_hub_configs_name_each_bbh_task(tmp_path):
    from sss.evaluation.tasks import lm_eval_configs

    configs = lm_eval_configs(task_config("bbh_cot"), tmp_path)
    assert len(configs) == 27
    assert {c["dataset_name"] for c in configs.values()} == set(SUBTASKS)
    assert all("dataset_kwargs" not in c for c in configs.values())


@pytest.mark.parametrize(
    "response, expected",
    [
        ("... So the answer is (A).", "(A)"),
        ("So the answer is A.", "(A)"),
        ("So the answer is (B) 12/14/2026.", "(B)"),
        ("So the answer is Yes.", "yes"),
        ("So the answer is valid.", "valid"),
        ("So the answer is ] } ].", "] } ]"),
        ("So the answer is 1,024.", "1024"),
        ("So the answer is -11.", "-11"),
        ("So the answer is apple  Banana cherry.", "apple banana cherry"),
        ("So the answer is **False**.", "false"),
        ("So the answer is", INVALID),
        ("I do not know.", INVALID),
    ],
)
def test_answer_normalisation(response, expected):
    assert utils.extract_answer(response) == expected


def test_every_target_scores_as_its_own_answer():
    for name in SUBTASKS:
        docs = json.loads(shared_data("bbh", "tasks", f"{name}.json").read_text())["examples"]
        for doc in docs:
            answer = utils.extract_answer(f"So the answer is {doc['target']}.")
            assert utils.is_correct(answer, doc), (name, doc["target"], answer)
        # and a different target of the same task does not
        targets = sorted({utils.target_of(d) for d in docs})
        if len(targets) > 1:
            assert not utils.is_correct(targets[0], {"target": targets[1]})


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["task.subtasks=[no_such_task]"], "task.subtasks = ['no_such_task'] is not allowed"),
        (["task.num_fewshot=4"], "at most 3"),
        (["task.data_files=/etc/hostname"], "task.data_files"),
    ],
)
def test_bad_settings_stop_before_any_model_loads(overrides, message, tmp_path):
    assert_refused(launch("task=bbh_cot", *overrides, f"output_root={tmp_path}"), message)


def test_data_dir_without_the_tasks_is_refused(tmp_path):
    result = launch("task=bbh_cot", f"task.data_dir={tmp_path}", f"output_root={tmp_path / 'out'}")
    assert_refused(result, "missing ['boolean_expressions'")
