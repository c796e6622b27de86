"""The tasks sss ships: each one an lm-eval YAML plus a small Python module for scoring.

`TASKS` maps the Hydra `task.name` to its adapter. `task_yaml()` writes the
per-run lm-eval task file: the shipped YAML included, with the run's data
files, shots, repeats and generation settings filled in from the Hydra task
config, so what ran is recorded in the run directory.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

TASK_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class TaskAdapter:
    name: str
    lm_eval_task: str
    yaml_path: Path
    module: str                                       # scoring module: extract_answers, is_correct, target_of
    default_data: Callable[[Path], dict[str, str]] | None  # generated data files, if the task makes its own

    def scoring(self):
        return importlib.import_module(self.module)

    def data_files(self, task_cfg: dict, cache_dir: Path) -> dict[str, str]:
        if task_cfg.get("data_files"):
            path = str(Path(task_cfg["data_files"]).expanduser().resolve())
            files = {"test": path}
            if self.default_data is not None:  # keep the shipped few-shot exemplars
                files["train"] = self.default_data(cache_dir)["train"]
            return files
        if self.default_data is None:
            raise ValueError(f"task {self.name} needs task.data_files")
        return self.default_data(cache_dir)


def _arith_data(cache_dir: Path) -> dict[str, str]:
    from .arith.generate import data_files

    return data_files(cache_dir)


TASKS: dict[str, TaskAdapter] = {
    "arith": TaskAdapter("arith", "sss_arith", TASK_DIR / "arith" / "arith.yaml",
                         "sss.evaluation.tasks.arith.utils", _arith_data),
}


def task_yaml(adapter: TaskAdapter, task_cfg: dict, cache_dir: Path) -> dict[str, Any]:
    """The lm-eval task config of one run (to be written next to the run's results)."""
    return {
        "include": str(adapter.yaml_path),
        "task": adapter.lm_eval_task,
        "dataset_kwargs": {"data_files": adapter.data_files(task_cfg, cache_dir)},
        "num_fewshot": task_cfg["num_fewshot"],
        "repeats": task_cfg["repeats"],
        "generation_kwargs": {"until": list(task_cfg["stop"]), "max_gen_toks": task_cfg["max_gen_toks"]},
    }


def write_task_yaml(path: Path, config: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
