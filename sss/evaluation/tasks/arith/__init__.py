"""`arith`: the embedded default task, generated arithmetic word problems (no download)."""

from __future__ import annotations

from pathlib import Path

from ..common import TaskAdapter, bad, check_data_file, local_dataset, run_settings

HERE = Path(__file__).resolve().parent


def check(task_cfg: dict) -> None:
    if task_cfg.get("data_dir"):
        raise bad("data_dir", task_cfg["data_dir"], "null (arith takes one file: task.data_files)")
    if task_cfg.get("data_files"):
        # the prompt reads `question`, the scoring `target` (rationales only serve exemplars)
        check_data_file("data_files", Path(str(task_cfg["data_files"])).expanduser(), ("question", "target"))


def build(task_cfg: dict, cache_dir: Path) -> dict[str, dict]:
    from .generate import data_files

    generated = data_files(cache_dir)
    config = {"include": str(HERE / "arith.yaml"), "task": "sss_arith", "dataset_kwargs": {"data_files": generated}}
    if task_cfg.get("data_files"):
        # the user's problems are scored; the generated training split keeps the exemplars
        local = local_dataset(Path(task_cfg["data_files"]).expanduser())
        local["dataset_kwargs"]["data_files"]["train"] = generated["train"]
        config.update(local)
    config.update(run_settings(task_cfg))
    return {"sss_arith": config}


ADAPTER = TaskAdapter("arith", "sss.evaluation.tasks.arith.utils", build, check, max_fewshot=32)
