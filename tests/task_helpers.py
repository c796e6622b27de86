"""Helpers for task tests: build a run's lm-eval configs and load them in lm-eval, offline."""

from __future__ import annotations

from pathlib import Path

import yaml

from conftest import ROOT


def task_config(name: str, **overrides) -> dict:
    """The Hydra task config conf/task/<name>.yaml with overrides, as plain data (interpolations
    such as the prompt's stops resolved, as Hydra resolves them for a run)."""
    from omegaconf import OmegaConf

    cfg = yaml.safe_load((ROOT / "conf" / "task" / f"{name}.yaml").read_text())
    cfg.update(overrides)
    return OmegaConf.to_container(OmegaConf.create({"task": cfg}), resolve=True)["task"]


def load_tasks(cfg: dict, folder: Path) -> dict:
    """{lm-eval task name: task object} for a task config, through the files a run writes."""
    from lm_eval.tasks import TaskManager

    from sss.evaluation.tasks import lm_eval_configs, write_task_yamls

    paths = write_task_yamls(folder / "lm_eval_tasks", lm_eval_configs(cfg, folder / "cache"))
    loaded = TaskManager(include_defaults=False).load([str(p) for p in paths])
    tasks = loaded["tasks"] if isinstance(loaded, dict) and "tasks" in loaded else loaded
    return dict(tasks)


def first_prompt(task, num_fewshot: int) -> tuple[dict, str]:
    doc = task.test_docs()[0]
    return doc, task.fewshot_context(doc, num_fewshot)
