"""What every task adapter shares: the run's generation settings and local-data loading.

An adapter turns the Hydra `task` config into one or more lm-eval task configs
(dicts written as YAML into the run directory). Each includes the YAML shipped
in the package and overrides only what the run decides: data source, shots,
repeats and generation settings, so the run directory records exactly what ran.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

# datasets' builder for each local file type a task accepts
LOCAL_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


class TaskConfigError(ValueError):
    """A task setting that cannot work with this task (named key, value, what is allowed)."""


def bad(key: str, value: Any, allowed: str) -> TaskConfigError:
    return TaskConfigError(f"task.{key} = {value!r} is not allowed: expected {allowed}")


def run_settings(task_cfg: dict) -> dict[str, Any]:
    """The lm-eval keys every run sets from its Hydra task config (never left to a YAML default)."""
    return {
        "num_fewshot": task_cfg["num_fewshot"],
        "repeats": task_cfg["repeats"],
        "generation_kwargs": {"until": list(task_cfg["stop"]),
                              "max_gen_toks": task_cfg["max_gen_toks"]},
    }


def local_dataset(path: Path, split: str = "test", **loader_kwargs: Any) -> dict[str, Any]:
    """lm-eval dataset keys that read one local file as `split` (no hub access)."""
    builder = LOCAL_BUILDERS[path.suffix.lower()]
    return {"dataset_path": builder, "dataset_name": None,
            "dataset_kwargs": {"data_files": {split: str(path.resolve())}, **loader_kwargs}}


def local_file(task_cfg: dict, default_name: str | None = None) -> Path | None:
    """The local test file a run asks for: `task.data_files`, or `<task.data_dir>/<default_name>`."""
    if task_cfg.get("data_files"):
        return Path(task_cfg["data_files"]).expanduser().resolve()
    if task_cfg.get("data_dir") and default_name:
        return Path(task_cfg["data_dir"]).expanduser().resolve() / default_name
    return None


@dataclass(frozen=True)
class TaskAdapter:
    """One Hydra task: how to check its config, build its lm-eval configs, and score answers.

    `scoring` names a module with `extract_answers` (lm-eval filter), `process_results`,
    `is_correct(answer, doc)` and `target_of(doc)`.
    """

    name: str
    scoring: str
    build: Callable[[dict, Path], dict[str, dict[str, Any]]]
    check: Callable[[dict], None]
    # how many few-shot exemplars the task has (None: `check` decides, e.g. user exemplar files)
    max_fewshot: int | None

    def scoring_module(self):
        import importlib

        return importlib.import_module(self.scoring)

    def validate(self, task_cfg: dict) -> None:
        data_files, data_dir = task_cfg.get("data_files"), task_cfg.get("data_dir")
        if data_files and data_dir:
            raise bad("data_files", data_files, "either task.data_files or task.data_dir, not both")
        if data_files is not None:
            path = Path(str(data_files)).expanduser()
            if not path.is_file():
                raise bad("data_files", data_files, "an existing local file")
            if path.suffix.lower() not in LOCAL_BUILDERS:
                raise bad("data_files", data_files, f"a file ending in one of {sorted(LOCAL_BUILDERS)}")
        if data_dir is not None and not Path(str(data_dir)).expanduser().is_dir():
            raise bad("data_dir", data_dir, "an existing local folder")
        if self.max_fewshot is not None and task_cfg["num_fewshot"] > self.max_fewshot:
            raise bad("num_fewshot", task_cfg["num_fewshot"],
                      f"at most {self.max_fewshot} (the exemplars task {self.name} has)")
        self.check(task_cfg)
