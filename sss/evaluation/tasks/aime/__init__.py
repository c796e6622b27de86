"""AIME 2024 and AIME 2025, 0-shot, as in the paper: "Question: {problem}\\nAnswer:".

One implementation for both: they differ only in their hub source (repository,
split and field spelling, which utils.process_docs unifies). Local data is one file
with the hub fields: `task.data_files`, or `task.data_dir` holding exactly one data
file (a local snapshot of the hub repository has one).
"""

from __future__ import annotations

from pathlib import Path

from ..common import LOCAL_BUILDERS, TaskAdapter, bad, local_dataset, run_settings

HERE = Path(__file__).resolve().parent
HUB = {
    "aime24": {"dataset_path": "Maxwell-Jia/AIME_2024", "dataset_name": None, "test_split": "train"},
    "aime25": {"dataset_path": "math-ai/aime25", "dataset_name": None, "test_split": "test"},
}
DATA_FILE = f"one data file ({', '.join(sorted(LOCAL_BUILDERS))}) with fields problem/Problem and answer/Answer"


def data_dir_files(data_dir: Path) -> list[Path]:
    """The data files of a local AIME folder: at its top level, or in data/ like many hub repos."""
    return sorted(
        path
        for folder in (data_dir, data_dir / "data")
        if folder.is_dir()
        for path in folder.iterdir()
        if path.is_file() and path.suffix.lower() in LOCAL_BUILDERS
    )


def local_test_file(task_cfg: dict) -> Path | None:
    if task_cfg.get("data_files"):
        return Path(task_cfg["data_files"]).expanduser().resolve()
    if task_cfg.get("data_dir"):
        (path,) = data_dir_files(Path(task_cfg["data_dir"]).expanduser().resolve())
        return path
    return None


def check(task_cfg: dict) -> None:
    from ..local_tables import column_names
    from .utils import field_of

    if task_cfg.get("data_dir"):
        found = data_dir_files(Path(task_cfg["data_dir"]).expanduser().resolve())
        if len(found) != 1:
            raise bad(
                "data_dir",
                task_cfg["data_dir"],
                f"a folder with {DATA_FILE}, at its top level or in data/; found {[p.name for p in found] or 'none'}",
            )
    path = local_test_file(task_cfg)
    if path is None:
        return
    key = "data_files" if task_cfg.get("data_files") else "data_dir"
    try:
        columns = column_names(path)
    except Exception as exc:  # any reader error: the file is not what the task needs
        raise bad(key, task_cfg[key], f"{DATA_FILE} ({path.name}: {exc})") from None
    missing = [f for f in ("problem", "answer") if field_of(columns, f) is None]
    if missing:
        raise bad(key, task_cfg[key], f"{DATA_FILE}; {path.name} lacks {missing} (it has {columns})")


def adapter(name: str) -> TaskAdapter:
    def build(task_cfg: dict, cache_dir: Path) -> dict[str, dict]:
        lm_eval_name = f"sss_{name}"
        config = {"include": str(HERE / "aime.yaml"), "task": lm_eval_name}
        path = local_test_file(task_cfg)
        if path is not None:
            config.update(local_dataset(path, split="test"), test_split="test")
        else:
            config.update(HUB[name])
        config.update(run_settings(task_cfg))
        return {lm_eval_name: config}

    return TaskAdapter(name, "sss.evaluation.tasks.aime.utils", build, check, max_fewshot=0)


ADAPTERS = tuple(adapter(name) for name in HUB)
