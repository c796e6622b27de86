"""BIG-Bench Hard, 3-shot chain of thought: one lm-eval task per BBH task, scored together.

The exemplars are BBH's own chain-of-thought prompts (`cot-prompts/<task>.txt`,
shipped here under BBH's MIT licence), split into the task description and its
worked examples so that `task.num_fewshot` (0-3) is honoured; with all three the
prompt is the BBH prompt file verbatim, followed by "Q: <input>\nA: Let's think step by step.".

`task.prompt=paper` runs each task as the paper did instead: lm-eval's own
bbh/cot_fewshot/<task>.yaml (read from the installed package at run time) with the
paper template's change, a space before each exemplar's target (bbh_cot_paper.yaml).
"""

from __future__ import annotations

from pathlib import Path

from ..common import TaskAdapter, bad, lm_eval_task_file, local_dataset, paper_includes, read_lm_eval_yaml, run_settings

HERE = Path(__file__).resolve().parent
PROMPTS = HERE / "cot-prompts"
SUBTASKS = tuple(sorted(p.stem for p in PROMPTS.glob("*.txt")))
ANSWER_CUE = "A: Let's think step by step."
# BBH prompt files start with a canary line and this separator before the description.
HEADER_END = "-----\n"
# Where a BBH task file may sit in `task.data_dir` (the BBH repository uses bbh/).
TASK_FOLDERS = ("bbh", "tasks", ".")
PAPER_OVERLAY = HERE / "bbh_cot_paper.yaml"


def paper_source(subtask: str) -> Path:
    """lm-eval's chain-of-thought few-shot task file of one BBH task (the paper's base)."""
    return lm_eval_task_file("bbh", "cot_fewshot", f"{subtask}.yaml")


def parse_prompt(text: str) -> tuple[str, list[dict[str, str]], str]:
    """A BBH chain-of-thought prompt -> (description, [{input, cot}, ...], separator), where the
    separator is what stands between the answer cue and the reasoning: a newline, or a space
    in the one BBH task (sports_understanding) that writes them on one line."""
    if HEADER_END in text:
        text = text.split(HEADER_END, 1)[1]
    description, *blocks = text.strip("\n").split("\n\nQ: ")
    if description.startswith("Q: "):  # a prompt without a description
        blocks.insert(0, description[3:])
        description = ""
    shots, separators = [], set()
    for block in blocks:
        for separator in ("\n", " "):
            question, found, cot = block.partition("\n" + ANSWER_CUE + separator)
            if found:
                break
        else:
            raise ValueError(f"an exemplar without {ANSWER_CUE!r}: {block[:80]!r}")
        separators.add(separator)
        shots.append({"input": question, "cot": cot.strip()})
    if len(separators) > 1:
        raise ValueError("exemplars mix separators after the answer cue")
    return description.strip(), shots, separators.pop() if separators else "\n"


def prompt_folder(task_cfg: dict) -> Path:
    if task_cfg.get("data_dir"):
        local = Path(task_cfg["data_dir"]).expanduser().resolve() / "cot-prompts"
        if local.is_dir():
            return local
    return PROMPTS


def subtasks(task_cfg: dict) -> list[str]:
    chosen = task_cfg.get("subtasks")
    return list(SUBTASKS) if chosen is None else list(chosen)


def task_file(data_dir: Path, subtask: str) -> Path | None:
    for folder in TASK_FOLDERS:
        path = (data_dir / folder / f"{subtask}.json").resolve()
        if path.is_file():
            return path
    return None


def check(task_cfg: dict) -> None:
    if task_cfg.get("data_files"):
        raise bad(
            "data_files",
            task_cfg["data_files"],
            "null: BBH is 27 files; set task.data_dir to a folder laid out like the BBH repository",
        )
    chosen = task_cfg.get("subtasks")
    if chosen is not None:
        if not isinstance(chosen, list) or not chosen or not all(isinstance(s, str) for s in chosen):
            raise bad("subtasks", chosen, f"null (all) or a non-empty list of BBH tasks from {list(SUBTASKS)}")
        unknown = sorted(set(chosen) - set(SUBTASKS))
        if unknown:
            raise bad("subtasks", unknown, f"BBH tasks from {list(SUBTASKS)}")
    if task_cfg.get("data_dir"):
        data_dir = Path(task_cfg["data_dir"]).expanduser().resolve()
        missing = [s for s in subtasks(task_cfg) if task_file(data_dir, s) is None]
        if missing:
            raise bad(
                "data_dir",
                task_cfg["data_dir"],
                f"a BBH folder with <task>.json in bbh/, tasks/ or the folder itself; "
                f"missing {missing[:3]}{' ...' if len(missing) > 3 else ''}",
            )
    if task_cfg.get("prompt") == "paper":
        for subtask in subtasks(task_cfg):
            source = paper_source(subtask)
            if not source.is_file():
                raise bad("prompt", "paper", f"an lm-eval with {source} (the paper's BBH prompts)")
            shots = len(read_lm_eval_yaml(source)["fewshot_config"]["samples"])
            if task_cfg["num_fewshot"] > shots:
                raise bad("num_fewshot", task_cfg["num_fewshot"], f"at most {shots} ({source})")
        return
    folder = prompt_folder(task_cfg)
    for subtask in subtasks(task_cfg):
        path = folder / f"{subtask}.txt"
        if not path.is_file():
            raise bad("data_dir", task_cfg.get("data_dir"), f"a cot-prompts/ folder with {path.name}")
        _, shots, _ = parse_prompt(path.read_text())
        if task_cfg["num_fewshot"] > len(shots):
            raise bad("num_fewshot", task_cfg["num_fewshot"], f"at most {len(shots)} ({path})")


def build(task_cfg: dict, cache_dir: Path) -> dict[str, dict]:
    configs = {}
    folder = prompt_folder(task_cfg)
    paper = task_cfg.get("prompt") == "paper"
    for subtask in subtasks(task_cfg):
        name = f"sss_bbh_cot_{subtask}"
        config = (
            paper_includes(paper_source(subtask), PAPER_OVERLAY) if paper else {"include": str(HERE / "bbh_cot.yaml")}
        )
        config["task"] = name
        if task_cfg.get("data_dir"):
            config.update(
                local_dataset(task_file(Path(task_cfg["data_dir"]).expanduser().resolve(), subtask), field="examples")
            )
        else:
            config["dataset_name"] = subtask
        if not paper:
            description, shots, separator = parse_prompt((folder / f"{subtask}.txt").read_text())
            config["description"] = description + "\n\n" if description else ""
            config["fewshot_config"] = {
                "sampler": "first_n",
                "samples": shots,
                "doc_to_target": "{{cot}}",
                "target_delimiter": separator,
            }
        config.update(run_settings(task_cfg))
        configs[name] = config
    return configs


ADAPTER = TaskAdapter(
    "bbh_cot", "sss.evaluation.tasks.bbh.utils", build, check, max_fewshot=3, prompts=("sss", "paper")
)
