"""GSM8K, 5-shot chain of thought (the paper's main benchmark).

Prompts are raw completions, "Question: ...\nAnswer: <rationale> The answer is N.",
as in the paper. The exemplars are the first GSM8K training problems, rewritten into
that form (calculator annotations dropped, "#### N" -> "The answer is N.", one line);
the paper used the classic hand-written chain-of-thought exemplars instead, which
sss does not redistribute (docs/tasks.md). Users may point `task.fewshot_file`
at any JSONL of {question, rationale} to use their own.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..common import TaskAdapter, bad, local_dataset, local_file, run_settings

HERE = Path(__file__).resolve().parent
EXEMPLARS = HERE / "exemplars.jsonl"


def exemplars(path: Path = EXEMPLARS) -> list[dict[str, str]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for i, row in enumerate(rows):
        if not isinstance(row.get("question"), str) or not isinstance(row.get("rationale"), str):
            raise ValueError(f"{path} line {i + 1}: expected string fields question and rationale")
    return rows


def _fewshot(task_cfg: dict) -> list[dict[str, str]]:
    return exemplars(Path(task_cfg["fewshot_file"]).expanduser() if task_cfg.get("fewshot_file")
                     else EXEMPLARS)


def check(task_cfg: dict) -> None:
    fewshot_file = task_cfg.get("fewshot_file")
    if fewshot_file is not None and not Path(str(fewshot_file)).expanduser().is_file():
        raise bad("fewshot_file", fewshot_file, "an existing JSONL file of {question, rationale}")
    try:
        shots = _fewshot(task_cfg)
    except (ValueError, json.JSONDecodeError) as exc:
        raise bad("fewshot_file", fewshot_file, f"a JSONL file of {{question, rationale}} ({exc})")
    if task_cfg["num_fewshot"] > len(shots):
        raise bad("num_fewshot", task_cfg["num_fewshot"],
                  f"at most {len(shots)} (the exemplars in {fewshot_file or EXEMPLARS.name})")
    path = local_file(task_cfg, "test.jsonl")
    if path is not None and not path.is_file():
        raise bad("data_dir", task_cfg["data_dir"], "a folder with test.jsonl (GSM8K as OpenAI released it)")


def build(task_cfg: dict, cache_dir: Path) -> dict[str, dict]:
    config = {"include": str(HERE / "gsm8k_cot.yaml"), "task": "sss_gsm8k_cot"}
    path = local_file(task_cfg, "test.jsonl")
    if path is not None:
        config.update(local_dataset(path))
    config["fewshot_config"] = {"sampler": "first_n", "samples": _fewshot(task_cfg),
                                "doc_to_target": "{{rationale}}"}
    config.update(run_settings(task_cfg))
    return {"sss_gsm8k_cot": config}


ADAPTER = TaskAdapter("gsm8k_cot", "sss.evaluation.tasks.gsm8k.utils", build, check,
                      max_fewshot=None)
