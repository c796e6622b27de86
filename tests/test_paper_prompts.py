"""task.prompt=paper renders, byte for byte, what lm-eval itself renders from the paper's stated
parts: lm-eval's own task files (found in the installed package) pointed at local data, with
only the paper's changes applied. Each reference config is written here from the paper's task
files' facts, not from sss's code; both sides are rendered by lm-eval without a model."""

from __future__ import annotations

from pathlib import Path

import lm_eval
import pytest
import yaml

from conftest import ROOT, assert_refused, launch, shared_data
from task_helpers import load_tasks, task_config

LM_EVAL_TASKS = Path(lm_eval.__file__).resolve().parent / "tasks"
MMLU_PRO = ROOT / "tests" / "data" / "mmlu_pro"


def reference_tasks(configs: dict[str, dict], folder: Path) -> dict:
    """lm-eval task objects from reference configs written as YAML files."""
    from lm_eval.tasks import TaskManager

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, config in configs.items():
        path = folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump({**config, "task": name}, sort_keys=False))
        paths.append(str(path))
    return dict(TaskManager(include_defaults=False).load(paths)["tasks"])


def contexts(task, limit: int | None = None) -> dict[int, str]:
    """{doc id: the context lm-eval sends the model}, built as an evaluation builds it."""
    task.build_all_requests(limit=limit, rank=0, world_size=1)
    return {instance.doc_id: instance.args[0] for instance in task.instances}


def local_json(path: Path, **kwargs) -> dict:
    return {
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {"test": str(path)}, **kwargs},
    }


def test_gsm8k_paper_prompt_is_lm_evals_rendering_of_the_papers_task(tmp_path):
    test = shared_data("gsm8k", "test.jsonl")
    cfg = task_config("gsm8k_cot", prompt="paper", data_files=str(test))
    ours = load_tasks(cfg, tmp_path / "sss")["sss_gsm8k_cot"]
    # the paper's task: its question form, lm-eval's gsm8k-cot exemplars first_n, 5 shots,
    # lm-eval's default delimiters (neither file sets them)
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
    limit = 40
    got, expected = contexts(ours, limit), contexts(reference, limit)
    assert len(got) == limit and got == expected
    # what that means, spelled out on the first question
    shipped = yaml.safe_load((LM_EVAL_TASKS / "gsm8k" / "gsm8k-cot.yaml").read_text())
    shots = shipped["fewshot_config"]["samples"]
    doc = ours.test_docs()[0]
    assert (
        got[0]
        == "".join(f"Question: {s['question']}\n Answer:  {s['target']}\n\n" for s in shots[:5])
        + f"Question: {doc['question']}\n Answer: "
    )
    assert ours.config.generation_kwargs["until"] == [
        "Question:",
        "</s>",
        "<|im_end|>",
        "<|endoftext|>",
        "You are an AI assistant",
    ]
    assert ours.config.generation_kwargs["max_gen_toks"] == 512
    # sss's own prompt is another one
    assert (
        contexts(load_tasks(task_config("gsm8k_cot", data_files=str(test)), tmp_path / "own")["sss_gsm8k_cot"], 1)[0]
        != got[0]
    )


def bbh_subtasks() -> list[str]:
    return sorted(p.stem for p in (LM_EVAL_TASKS / "bbh" / "cot_fewshot").glob("*.yaml") if not p.stem.startswith("_"))


def test_bbh_paper_prompts_are_lm_evals_cot_fewshot_with_the_papers_delimiter(tmp_path):
    data = shared_data("bbh")
    subtasks = bbh_subtasks()
    assert len(subtasks) == 27
    cfg = task_config("bbh_cot", prompt="paper", data_dir=str(data))
    ours = load_tasks(cfg, tmp_path / "sss")
    # lm-eval's bbh cot_fewshot files; the paper's template left target_delimiter at lm-eval's
    # default " " (lm-eval's own template sets "")
    reference = reference_tasks(
        {
            f"paper_bbh_{name}": {
                "include": str(LM_EVAL_TASKS / "bbh" / "cot_fewshot" / f"{name}.yaml"),
                "target_delimiter": " ",
                **local_json(data / "tasks" / f"{name}.json", field="examples"),
            }
            for name in subtasks
        },
        tmp_path / "ref",
    )
    for name in subtasks:
        got, expected = contexts(ours[f"sss_bbh_cot_{name}"], 3), contexts(reference[f"paper_bbh_{name}"], 3)
        assert len(got) == 3 and got == expected, name
        assert got[0].endswith("\nA: Let's think step by step.\n")
        assert ours[f"sss_bbh_cot_{name}"].config.generation_kwargs["until"] == ["</s>", "Q", "\n\n"]
    # an exemplar's reasoning follows its cue after the newline and a space
    navigate = contexts(ours["sss_bbh_cot_navigate"], 1)[0]
    assert "A: Let's think step by step.\n We start at the origin" in navigate


def test_mmlu_pro_paper_prompts_are_lm_evals_mmlu_pro_task(tmp_path):
    cfg = task_config("mmlu_pro_cot", prompt="paper", data_dir=str(MMLU_PRO), subjects=["math", "computer_science"])
    ours = load_tasks(cfg, tmp_path / "sss")
    data = {"data_files": {"test": str(MMLU_PRO / "test.jsonl"), "validation": str(MMLU_PRO / "validation.jsonl")}}
    reference = reference_tasks(
        {
            f"paper_mmlu_pro_{slug}": {
                "include": str(LM_EVAL_TASKS / "mmlu_pro" / f"mmlu_pro_{slug}.yaml"),
                "dataset_path": "json",
                "dataset_name": None,
                "dataset_kwargs": data,
            }
            for slug in ("math", "computer_science")
        },
        tmp_path / "ref",
    )
    for slug in ("math", "computer_science"):
        task = ours[f"sss_mmlu_pro_cot_{slug}"]
        got, expected = contexts(task), contexts(reference[f"paper_mmlu_pro_{slug}"])
        assert len(got) == 2 and got == expected, slug
        assert "\nOptions:\nA. " in got[0] and got[0].endswith("Answer: Let's think step by step.")
        assert task.config.generation_kwargs["until"] == ["</s>", "Q:", "<|im_end|>"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["task=gsm8k_cot", "task.prompt=lm_eval"], "task.prompt = 'lm_eval' is not allowed: expected one of"),
        (["task=arith", "task.prompt=paper"], "task.prompt = 'paper' is not allowed"),
        (["task=gsm8k_cot", "task.prompt=paper", "task.num_fewshot=9"], "task.num_fewshot = 9 is not allowed"),
        (["task=bbh_cot", "task.prompt=paper", "task.num_fewshot=4"], "task.num_fewshot = 4 is not allowed"),
        (["task=gsm8k_cot", "task.prompt=paper", f"task.fewshot_file={ROOT / 'README.md'}"], "task.fewshot_file"),
    ],
)
def test_bad_prompt_settings_stop_before_any_model_loads(overrides, message, tmp_path):
    assert_refused(launch(*overrides, f"output_root={tmp_path}"), message)


def test_own_stops_win_over_the_prompts(tmp_path):
    cfg = task_config("bbh_cot", prompt="paper", stop=["Q:"], subtasks=["navigate"], data_dir=str(shared_data("bbh")))
    task = load_tasks(cfg, tmp_path)["sss_bbh_cot_navigate"]
    assert task.config.generation_kwargs["until"] == ["Q:"]
