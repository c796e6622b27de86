"""GSM8K, 5-shot chain of thought (the paper's main benchmark).

Prompts are raw completions, "Question: ...\nAnswer: <rationale> The answer is N.",
as in the paper. The exemplars are the first GSM8K training problems, rewritten into
that form (calculator annotations dropped, "#### N" -> "The answer is N.", one line);
the paper used the classic hand-written chain-of-thought exemplars instead, which
sss does not redistribute (docs/tasks.md). Users may point `task.fewshot_file`
at any JSONL of {question, rationale} to use their own.

`task.prompt=paper` runs the paper's task instead: lm-eval's own gsm8k-cot.yaml (its
chain-of-thought exemplars, read from the installed package at run time) with the
paper's question form "Question: ...\n Answer: " (gsm8k_cot_paper.yaml); docs/paper.md.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..common import (
    TaskAdapter,
    bad,
    check_data_file,
    lm_eval_task_file,
    local_dataset,
    local_file,
    paper_includes,
    read_lm_eval_yaml,
    run_settings,
)

HERE = Path(__file__).resolve().parent
EXEMPLARS = HERE / "exemplars.jsonl"
PAPER_OVERLAY = HERE / "gsm8k_cot_paper.yaml"


def paper_source() -> Path:
    """lm-eval's chain-of-thought GSM8K task, whose exemplars the paper used."""
    return lm_eval_task_file("gsm8k", "gsm8k-cot.yaml")


def exemplars(path: Path = EXEMPLARS) -> list[dict[str, str]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for i, row in enumerate(rows):
        if not isinstance(row.get("question"), str) or not isinstance(row.get("rationale"), str):
            raise ValueError(f"{path} line {i + 1}: expected string fields question and rationale")
    return rows


def _fewshot(task_cfg: dict) -> list[dict[str, str]]:
    return exemplars(Path(task_cfg["fewshot_file"]).expanduser() if task_cfg.get("fewshot_file") else EXEMPLARS)


def _check_paper(task_cfg: dict) -> None:
    if task_cfg.get("fewshot_file") is not None:
        raise bad(
            "fewshot_file",
            task_cfg["fewshot_file"],
            "null with task.prompt=paper (the paper's exemplars are lm-eval's gsm8k-cot ones)",
        )
    source = paper_source()
    if not source.is_file():
        raise bad("prompt", "paper", f"an lm-eval with {source} (the paper's exemplars)")
    shots = len(read_lm_eval_yaml(source)["fewshot_config"]["samples"])
    if task_cfg["num_fewshot"] > shots:
        raise bad("num_fewshot", task_cfg["num_fewshot"], f"at most {shots} (the exemplars in {source})")


def check(task_cfg: dict) -> None:
    path = local_file(task_cfg, "test.jsonl")
    if path is not None and not path.is_file():
        raise bad("data_dir", task_cfg["data_dir"], "a folder with test.jsonl (GSM8K as OpenAI released it)")
    if path is not None:
        # GSM8K as OpenAI released it: the prompt reads `question`, the scoring `answer`
        key = "data_files" if task_cfg.get("data_files") else "data_dir"
        check_data_file(key, path, ("question", "answer"))
    if task_cfg.get("prompt") == "paper":
        _check_paper(task_cfg)
        return
    fewshot_file = task_cfg.get("fewshot_file")
    if fewshot_file is not None and not Path(str(fewshot_file)).expanduser().is_file():
        raise bad("fewshot_file", fewshot_file, "an existing JSONL file of {question, rationale}")
    try:
        shots = _fewshot(task_cfg)
    except (ValueError, json.JSONDecodeError) as exc:
        raise bad("fewshot_file", fewshot_file, f"a JSONL file of {{question, rationale}} ({exc})") from exc
    if task_cfg["num_fewshot"] > len(shots):
        raise bad(
            "num_fewshot",
            task_cfg["num_fewshot"],
            f"at most {len(shots)} (the exemplars in {fewshot_file or EXEMPLARS.name})",
        )


def build(task_cfg: dict, cache_dir: Path) -> dict[str, dict]:
    paper = task_cfg.get("prompt") == "paper"
    config = paper_includes(paper_source(), PAPER_OVERLAY) if paper else {"include": str(HERE / "gsm8k_cot.yaml")}
    config["task"] = "sss_gsm8k_cot"
    path = local_file(task_cfg, "test.jsonl")
    if path is not None:
        config.update(local_dataset(path))
    if not paper:
        config["fewshot_config"] = {
            "sampler": "first_n",
            "samples": _fewshot(task_cfg),
            "doc_to_target": "{{rationale}}",
        }
    config.update(run_settings(task_cfg))
    return {"sss_gsm8k_cot": config}


ADAPTER = TaskAdapter(
    "gsm8k_cot", "sss.evaluation.tasks.gsm8k.utils", build, check, max_fewshot=None, prompts=("sss", "paper")
)
