"""MMLU-Pro, 5-shot chain of thought: one lm-eval task per category, scored together.

Exemplars are the first validation questions of the question's own category (the
validation split has 5 per category, with chains of thought). Each lm-eval task
selects its category with a row filter of the Parquet loader
(`dataset_kwargs.filters`), which applies to both splits, so the hub dataset and a
local copy load the same way and the run's YAML states the selection plainly.
`task.limit` counts questions per category.

Local data (`task.data_dir`; MMLU-Pro is not shipped with sss) holds both splits, as
  <data_dir>/data/test-*.parquet and <data_dir>/data/validation-*.parquet (the hub repo),
or the same names directly in <data_dir>, or <data_dir>/test.jsonl and validation.jsonl
(records with the hub fields; converted once to Parquet in the sss cache).
`task.data_files` is refused: a test file alone has no exemplars.

`task.prompt=paper` runs each category as the paper did instead: lm-eval's own
mmlu_pro/mmlu_pro_<category>.yaml (its header, "A. ..." options and exemplar layout, read
from the installed package at run time) with the paper's stops (mmlu_pro_cot_paper.yaml).
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from pathlib import Path

from ..common import TaskAdapter, bad, lm_eval_task_file, paper_includes, run_settings

HERE = Path(__file__).resolve().parent
# MMLU-Pro's 14 categories as the dataset names them; task.subjects uses the names with "_"
CATEGORIES = (
    "biology",
    "business",
    "chemistry",
    "computer science",
    "economics",
    "engineering",
    "health",
    "history",
    "law",
    "math",
    "other",
    "philosophy",
    "physics",
    "psychology",
)
SUBJECTS = {category.replace(" ", "_"): category for category in CATEGORIES}
SPLITS = ("test", "validation")
SHOTS = 5
# fields the prompt needs, per split
FIELDS = {
    "test": ("question", "options", "answer", "category"),
    "validation": ("question", "options", "answer", "category", "cot_content"),
}
PAPER_OVERLAY = HERE / "mmlu_pro_cot_paper.yaml"
LAYOUTS = (
    "data/<split>-*.parquet (the hub repository), <split>-*.parquet, <split>.parquet "
    "or <split>.jsonl, for both splits test and validation"
)


def split_files(data_dir: Path, split: str) -> list[Path]:
    """The files of one split in a local MMLU-Pro folder (the first layout that has any)."""
    for folder in (data_dir / "data", data_dir):
        for pattern in (f"{split}-*.parquet", f"{split}.parquet", f"{split}.jsonl"):
            found = sorted(folder.glob(pattern))
            if found:
                return found
    return []


def paper_source(slug: str) -> Path:
    """lm-eval's own task file of one MMLU-Pro category (the paper's base)."""
    return lm_eval_task_file("mmlu_pro", f"mmlu_pro_{slug}.yaml")


def subjects(task_cfg: dict) -> list[str]:
    chosen = task_cfg.get("subjects")
    return list(SUBJECTS) if chosen is None else list(chosen)


def _check_local(task_cfg: dict, data_dir: Path) -> None:
    from ..local_tables import column_names, read_table

    counts = {}
    for split in SPLITS:
        files = split_files(data_dir, split)
        if not files:
            raise bad("data_dir", task_cfg["data_dir"], f"a folder with MMLU-Pro as {LAYOUTS}; no {split} file found")
        counts[split] = Counter()
        for path in files:
            try:
                columns = column_names(path)
                missing = sorted(set(FIELDS[split]) - set(columns))
                if not missing:
                    counts[split].update(read_table(path, ["category"]).column("category").to_pylist())
            except Exception as exc:  # any reader error: the file is not what the task needs
                raise bad("data_dir", task_cfg["data_dir"], f"readable MMLU-Pro files ({path.name}: {exc})") from None
            if missing:
                raise bad(
                    "data_dir",
                    task_cfg["data_dir"],
                    f"MMLU-Pro files with fields {list(FIELDS[split])}; {path.name} lacks {missing}",
                )
    for slug in subjects(task_cfg):
        category = SUBJECTS[slug]
        if counts["test"][category] == 0:
            present = sorted(c.replace(" ", "_") for c in counts["test"])
            raise bad(
                "subjects",
                task_cfg.get("subjects"),
                f"a list of the categories {data_dir} has test questions of, from "
                f"{present} (it has none of {category!r})",
            )
        if counts["validation"][category] < task_cfg["num_fewshot"]:
            raise bad(
                "num_fewshot",
                task_cfg["num_fewshot"],
                f"at most {counts['validation'][category]}, the validation exemplars of {category!r} in {data_dir}",
            )


def check(task_cfg: dict) -> None:
    if task_cfg.get("data_files"):
        raise bad(
            "data_files",
            task_cfg["data_files"],
            f"null: MMLU-Pro's exemplars come from its validation split; set task.data_dir to a folder with {LAYOUTS}",
        )
    chosen = task_cfg.get("subjects")
    if chosen is not None:
        if not isinstance(chosen, list) or not chosen or not all(isinstance(s, str) for s in chosen):
            raise bad("subjects", chosen, f"null (all 14) or a non-empty list of categories from {list(SUBJECTS)}")
        unknown = [s for s in chosen if s not in SUBJECTS]
        if unknown:
            raise bad("subjects", unknown, f"MMLU-Pro categories from {list(SUBJECTS)}")
        if len(set(chosen)) != len(chosen):
            raise bad("subjects", chosen, "each category once")
    if task_cfg.get("prompt") == "paper":
        for slug in subjects(task_cfg):
            if not paper_source(slug).is_file():
                raise bad("prompt", "paper", f"an lm-eval with {paper_source(slug)} (the paper's MMLU-Pro task)")
    if task_cfg.get("data_dir"):
        _check_local(task_cfg, Path(task_cfg["data_dir"]).expanduser().resolve())


def as_parquet(path: Path, cache_dir: Path) -> Path:
    """A JSON-lines split as Parquet in the cache (the Parquet loader is what filters rows);
    named by content, so an edited file is converted again."""
    if path.suffix.lower() == ".parquet":
        return path
    import pyarrow.parquet as pq

    from ..local_tables import read_table

    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    out = cache_dir / "mmlu_pro" / f"{path.stem}-{digest}.parquet"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_suffix(f".{os.getpid()}.partial")  # concurrent runs never share one
        pq.write_table(read_table(path), partial)
        partial.replace(out)
    return out


def build(task_cfg: dict, cache_dir: Path) -> dict[str, dict]:
    local = None
    if task_cfg.get("data_dir"):
        data_dir = Path(task_cfg["data_dir"]).expanduser().resolve()
        local = {split: [str(as_parquet(p, cache_dir)) for p in split_files(data_dir, split)] for split in SPLITS}
    configs = {}
    for slug in subjects(task_cfg):
        name = f"sss_mmlu_pro_cot_{slug}"
        config = (
            paper_includes(paper_source(slug), PAPER_OVERLAY)
            if task_cfg.get("prompt") == "paper"
            else {"include": str(HERE / "mmlu_pro_cot.yaml")}
        )
        config["task"] = name
        kwargs = {"filters": [["category", "==", SUBJECTS[slug]]]}
        if local is not None:
            config.update(dataset_path="parquet", dataset_name=None)
            kwargs["data_files"] = local
        config["dataset_kwargs"] = kwargs
        config.update(run_settings(task_cfg))
        configs[name] = config
    return configs


ADAPTER = TaskAdapter(
    "mmlu_pro_cot", "sss.evaluation.tasks.mmlu_pro.utils", build, check, max_fewshot=SHOTS, prompts=("sss", "paper")
)
