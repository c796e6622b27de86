"""The `task` group (conf/task/*.yaml). The keys every task has are TaskSchema's; tasks with more
(per-prompt stops, exemplar files, subsets) have a schema of their own that extends it, named
first in their YAML's defaults list (`/schema/task/<name>@_here_`). What a task's data must hold
is checked by its adapter (sss.evaluation.tasks), which knows the task."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from .common import at_least, bad


@dataclass
class TaskSchema:
    name: str = MISSING
    limit: int | None = MISSING
    repeats: int = MISSING
    num_fewshot: int = MISSING
    max_gen_toks: int = MISSING
    stop: list[str] = MISSING
    # the prompt style: each task lists the ones it has (sss, and paper where sss has the paper's)
    prompt: str = MISSING
    chat_template: bool = MISSING
    data_files: str | None = MISSING
    data_dir: str | None = MISSING

    def check(self) -> None:
        at_least("task.limit", self.limit, 1, allow_none=True)
        at_least("task.repeats", self.repeats, 1)
        at_least("task.num_fewshot", self.num_fewshot, 0)
        at_least("task.max_gen_toks", self.max_gen_toks, 1)
        if not all(self.stop):
            raise bad("task.stop", list(self.stop), "a list of non-empty strings")


@dataclass
class PromptStops:
    """The stop strings of each prompt style (task.stop picks the chosen prompt's)."""

    sss: list[str] = MISSING
    paper: list[str] = MISSING


@dataclass
class Gsm8kCotSchema(TaskSchema):
    prompt_stops: PromptStops = MISSING
    # a JSONL file of exemplars (question, rationale); null: the ones shipped with sss
    fewshot_file: str | None = MISSING


@dataclass
class BbhCotSchema(TaskSchema):
    prompt_stops: PromptStops = MISSING
    # BBH task names; null: all 27
    subtasks: list[str] | None = MISSING


@dataclass
class MmluProCotSchema(TaskSchema):
    prompt_stops: PromptStops = MISSING
    # categories, "_" for spaces; null: all 14
    subjects: list[str] | None = MISSING


# the tasks whose YAML names a schema of its own; the others (arith, aime24, aime25) are TaskSchema
VARIANTS = {"gsm8k_cot": Gsm8kCotSchema, "bbh_cot": BbhCotSchema, "mmlu_pro_cot": MmluProCotSchema}
