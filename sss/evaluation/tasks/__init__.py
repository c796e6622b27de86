"""The tasks sss ships: each one lm-eval YAML(s) in its folder plus a scoring module.

`TASKS` maps the Hydra `task.name` to its adapter (sss/evaluation/tasks/common.py).
`lm_eval_configs()` turns a run's task config into the lm-eval task configs that
the run writes into its directory (`lm_eval_tasks/<name>.yaml`) and evaluates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from . import aime, arith, bbh, gsm8k, mmlu_pro
from .common import TaskAdapter, TaskConfigError

TASKS: dict[str, TaskAdapter] = {
    adapter.name: adapter
    for adapter in (
        arith.ADAPTER,
        gsm8k.ADAPTER,
        bbh.ADAPTER,
        mmlu_pro.ADAPTER,
        *aime.ADAPTERS,
    )
}

__all__ = ["TASKS", "TaskAdapter", "TaskConfigError", "lm_eval_configs", "write_task_yamls"]


def lm_eval_configs(task_cfg: dict, cache_dir: Path) -> dict[str, dict[str, Any]]:
    """{lm-eval task name: its config} for one run of the Hydra task `task_cfg`."""
    return TASKS[task_cfg["name"]].build(task_cfg, cache_dir)


def write_task_yamls(folder: Path, configs: dict[str, dict[str, Any]]) -> list[Path]:
    """One YAML per lm-eval task, in the order given (what simple_evaluate runs)."""
    from sss.runs.layout import write_atomic

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, config in configs.items():
        path = folder / f"{name}.yaml"
        write_atomic(path, yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=100))
        paths.append(path)
    return paths
