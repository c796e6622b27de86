"""What every task adapter shares: the run's generation settings and local-data loading.

An adapter turns the Hydra `task` config into one or more lm-eval task configs
(dicts written as YAML into the run directory). Each includes the YAML shipped
in the package and overrides only what the run decides: data source, shots,
repeats and generation settings, so the run directory records exactly what ran.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Callable

import yaml

# datasets' builder for each local file type a task accepts
LOCAL_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


class TaskConfigError(ValueError):
    """A task setting that cannot work with this task (named key, value, what is allowed)."""


def bad(key: str, value: Any, allowed: str) -> TaskConfigError:
    return TaskConfigError(f"task.{key} = {value!r} is not allowed: expected {allowed}")


def lm_eval_task_file(*parts: str) -> Path:
    """A task file shipped inside the installed lm-eval package (found without importing it)."""
    spec = importlib.util.find_spec("lm_eval")
    if spec is None or not spec.submodule_search_locations:
        raise TaskConfigError("lm-eval is not installed (pip install lm-eval)")
    return Path(list(spec.submodule_search_locations)[0], "tasks", *parts)


class _TaggedLoader(yaml.SafeLoader):
    """Reads lm-eval task YAMLs as data: a `!function` tag stays its text."""


_TaggedLoader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))


def read_lm_eval_yaml(path: Path) -> dict[str, Any]:
    """One lm-eval task YAML as data (its own keys; `include`s are not followed)."""
    return yaml.load(path.read_text(), Loader=_TaggedLoader)  # noqa: S506 (a SafeLoader)


def paper_includes(lm_eval_file: Path, overlay: Path) -> dict[str, Any]:
    """lm-eval keys that build a task from lm-eval's own task file with sss's overlay on top
    (the overlay's keys win; lm-eval resolves the file's own includes and functions)."""
    return {"include": [str(lm_eval_file), str(overlay)]}


def run_settings(task_cfg: dict) -> dict[str, Any]:
    """The lm-eval keys every run sets from its Hydra task config (never left to a YAML default)."""
    return {
        "num_fewshot": task_cfg["num_fewshot"],
        "repeats": task_cfg["repeats"],
        "generation_kwargs": {"until": list(task_cfg["stop"]), "max_gen_toks": task_cfg["max_gen_toks"]},
    }


def local_dataset(path: Path, split: str = "test", **loader_kwargs: Any) -> dict[str, Any]:
    """lm-eval dataset keys that read one local file as `split` (no hub access)."""
    builder = LOCAL_BUILDERS[path.suffix.lower()]
    return {
        "dataset_path": builder,
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {split: str(path.resolve())}, **loader_kwargs},
    }


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
    # the prompt styles `task.prompt` may name: sss's own, and "paper" where sss has the paper's
    prompts: tuple[str, ...] = ("sss",)

    def scoring_module(self):
        import importlib

        return importlib.import_module(self.scoring)

    def validate(self, task_cfg: dict) -> None:
        prompt = task_cfg.get("prompt", "sss")
        if prompt not in self.prompts:
            raise bad("prompt", prompt, f"one of {list(self.prompts)} for task {self.name}")
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
            raise bad(
                "num_fewshot",
                task_cfg["num_fewshot"],
                f"at most {self.max_fewshot} (the exemplars task {self.name} has)",
            )
        self.check(task_cfg)


def check_data_file(key: str, path: Path, required: tuple[str, ...]) -> None:
    """A local data file that lm-eval will read, checked before any model loads: it exists, is
    readable UTF-8, parses (JSON lines: line by line), has the fields the task's prompt and
    scoring read, and holds at least one document. Each problem is one TaskConfigError."""
    shown = str(path)
    if not path.is_file():
        raise bad(key, shown, "an existing local file")
    if not os.access(path, os.R_OK):
        raise bad(key, shown, "a file this user can read")
    suffix = path.suffix.lower()
    if suffix not in LOCAL_BUILDERS:
        raise bad(key, shown, f"a file ending in one of {sorted(LOCAL_BUILDERS)}")
    if suffix in (".jsonl", ".json"):
        rows = _json_rows(key, path)
    else:
        from .local_tables import read_table

        try:
            rows = read_table(path).to_pylist()
        except Exception as exc:  # pyarrow's parse errors come in several kinds
            raise bad(key, shown, f"a readable {suffix} file ({type(exc).__name__}: {exc})") from None
    if not rows:
        raise bad(key, shown, "a file with at least one document (it has none)")
    for number, row in enumerate(rows, 1):
        missing = [name for name in required if not isinstance(row, dict) or row.get(name) in (None, "")]
        if missing:
            raise bad(key, shown, f"documents with the fields {list(required)}: document {number} lacks {missing}")


def _json_rows(key: str, path: Path) -> list[Any]:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad(key, str(path), f"a UTF-8 text file (byte {exc.start} is not UTF-8)") from None
    if path.suffix.lower() == ".json" and text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except ValueError as exc:
            raise bad(key, str(path), f"a parseable JSON list of documents ({exc})") from None
        return rows if isinstance(rows, list) else [rows]
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError as exc:
            raise bad(key, str(path), f"one JSON object per line (line {number}: {exc})") from None
    return rows
