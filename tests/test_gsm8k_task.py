"""gsm8k_cot: exemplars, answer extraction, the prompt lm-eval builds from a local GSM8K file."""

from __future__ import annotations

import json

import pytest

from conftest import assert_refused, launch, shared_data
from sss.evaluation.answers import number_after_answer_is
from sss.evaluation.tasks.gsm8k import EXEMPLARS, exemplars
from sss.evaluation.tasks.gsm8k import utils
from task_helpers import first_prompt, load_tasks, task_config


def test_shipped_exemplars_are_the_first_training_problems_rewritten():
    train = shared_data("gsm8k", "train.jsonl")
    records = [json.loads(line) for line in train.read_text().splitlines()[:8]]
    assert exemplars() == [utils.exemplar_from_train(r) for r in records]
    for shot, record in zip(exemplars(), records):
        assert "<<" not in shot["rationale"] and "####" not in shot["rationale"]
        assert "\n" not in shot["rationale"]
        # the rewritten chain of thought still scores as its own gold answer
        assert number_after_answer_is(shot["rationale"]) == utils.target_of(record)


def test_targets_of_real_test_questions_are_plain_numbers():
    test = shared_data("gsm8k", "test.jsonl")
    docs = [json.loads(line) for line in test.read_text().splitlines()]
    assert len(docs) == 1319
    for doc in docs:
        target = utils.target_of(doc)
        assert target == doc["answer"].split("####")[-1].strip().replace(",", "")
        assert utils.is_correct(target, doc)


def test_local_file_loads_in_lm_eval_with_the_papers_prompt_form(tmp_path):
    test = shared_data("gsm8k", "test.jsonl")
    cfg = task_config("gsm8k_cot", data_files=str(test), num_fewshot=5)
    tasks = load_tasks(cfg, tmp_path)
    assert list(tasks) == ["sss_gsm8k_cot"]
    task = tasks["sss_gsm8k_cot"]
    assert len(task.test_docs()) == 1319
    doc, prompt = first_prompt(task, 5)
    shots = "".join(f"Question: {s['question']}\nAnswer: {s['rationale']}\n\n" for s in exemplars()[:5])
    assert prompt == shots + f"Question: {doc['question']}\nAnswer:"
    assert task.config.generation_kwargs == {"until": cfg["stop"], "max_gen_toks": 512}
    assert task.config.repeats == 1


def test_data_dir_and_hub_sources(tmp_path):
    from sss.evaluation.tasks import lm_eval_configs

    test = shared_data("gsm8k", "test.jsonl")
    (config,) = lm_eval_configs(task_config("gsm8k_cot", data_dir=str(test.parent)), tmp_path).values()
    assert config["dataset_kwargs"]["data_files"] == {"test": str(test.resolve())}
    (hub,) = lm_eval_configs(task_config("gsm8k_cot"), tmp_path).values()
    # no local data: the shipped YAML's hub dataset (openai/gsm8k, main) is left in force
    assert "dataset_path" not in hub and "dataset_kwargs" not in hub
    assert EXEMPLARS.name in str(EXEMPLARS) and hub["fewshot_config"]["samples"] == exemplars()


def test_own_exemplar_file(tmp_path):
    from sss.evaluation.tasks import lm_eval_configs

    own = tmp_path / "shots.jsonl"
    own.write_text(json.dumps({"question": "1+1?", "rationale": "1+1=2. The answer is 2."}) + "\n")
    (config,) = lm_eval_configs(task_config("gsm8k_cot", fewshot_file=str(own), num_fewshot=1), tmp_path).values()
    assert config["fewshot_config"]["samples"] == [{"question": "1+1?", "rationale": "1+1=2. The answer is 2."}]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["task.data_files=/no/such/test.jsonl"], "task.data_files = '/no/such/test.jsonl' is not allowed"),
        (["task.data_dir=/no/such/dir"], "task.data_dir = '/no/such/dir' is not allowed"),
        (["task.num_fewshot=9"], "at most 8"),
        (["task.fewshot_file=/no/shots.jsonl"], "task.fewshot_file"),
    ],
)
def test_bad_settings_stop_before_any_model_loads(overrides, message, tmp_path):
    assert_refused(launch("task=gsm8k_cot", *overrides, f"output_root={tmp_path}"), message)
    assert not list(tmp_path.rglob("manifest.json"))  # no run directory was started


def test_data_files_and_data_dir_together_are_refused(tmp_path):
    test = shared_data("gsm8k", "test.jsonl")
    result = launch(
        "task=gsm8k_cot", f"task.data_files={test}", f"task.data_dir={test.parent}", f"output_root={tmp_path}"
    )
    assert_refused(result, "not both")
