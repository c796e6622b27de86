"""samples.parquet and metrics.json from lm-eval's logged samples, and rescoring from them.

Rows are joined to the engine's per-sample records by (lm-eval task, doc id,
repeat), never by position; the answer of each repeat is lm-eval's filtered
response (the task's own extraction, normalised). Tasks the paper ran also keep the
paper's raw extracted string (`extracted`), its reference (`reference`) and its
grade (`paper_correct`); metrics.json's `paper` holds the paper's metrics.
`rescore` recomputes either metric set from a run's samples.parquet, without a model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from .metrics import paper_summarize, paper_summarize_by_task, summarize, summarize_by_task

SCORINGS = ("sss", "paper")


def samples_table(logged: dict[str, list[dict]], adapter, records: list[dict]) -> pd.DataFrame:
    """One row per (lm-eval task, doc, repeat), from lm-eval's samples of every task of the run."""
    scoring = adapter.scoring_module()
    rules = getattr(scoring, "PAPER_RULES", None)
    rows = []
    for task, samples in logged.items():
        for sample in samples:
            doc = sample["doc"]
            # one generate_until instance per doc, holding every repeat
            (responses,) = sample["resps"]
            (answers,) = sample["filtered_resps"]
            if len(answers) != len(responses):
                raise RuntimeError(
                    f"{task} doc {sample['doc_id']}: {len(responses)} responses but {len(answers)} extracted answers"
                )
            prompt = _prompt(sample)
            for repeat, (response, answer) in enumerate(zip(responses, answers)):
                row = {
                    "lm_eval_task": task,
                    "doc_id": int(sample["doc_id"]),
                    "repeat": repeat,
                    "prompt": prompt,
                    "response": response,
                    "answer": answer,
                    "target": scoring.target_of(doc),
                    "correct": bool(scoring.is_correct(answer, doc)),
                }
                if rules is not None:
                    extracted, reference = rules.extract(response), scoring.paper_target(doc)
                    row.update(
                        extracted=extracted, reference=reference, paper_correct=rules.matches(extracted, reference)
                    )
                rows.append(row)
    table = pd.DataFrame(rows)
    engine = pd.DataFrame(records).rename(columns={"task": "lm_eval_task"})
    table = table.merge(engine, on=["lm_eval_task", "doc_id", "repeat"], how="left", validate="one_to_one")
    if table["seed"].isna().any():
        raise RuntimeError("some samples have no engine record (task/doc id/repeat mismatch)")
    return table.sort_values(["lm_eval_task", "doc_id", "repeat"]).reset_index(drop=True)


def _prompt(sample: dict) -> str | None:
    """The context the model was given (lm-eval logs it as the first request argument)."""
    arguments = sample.get("arguments")
    if isinstance(arguments, dict) and arguments:
        first = next(iter(arguments.values()))
        if isinstance(first, dict) and "arg_0" in first:
            return str(first["arg_0"])
    if isinstance(arguments, (list, tuple)) and arguments and isinstance(arguments[0], (list, tuple)):
        return str(arguments[0][0])
    return None


def paper_rules(task_name: str):
    """The paper's extraction and grading rules of a Hydra task (None: the paper did not run it)."""
    from .tasks import TASKS

    return getattr(TASKS[task_name].scoring_module(), "PAPER_RULES", None)


def scores(samples: pd.DataFrame, task_name: str, scoring: str = "sss") -> dict[str, Any] | None:
    """{"metrics": ..., and "by_task" for several lm-eval tasks} of one metric set, from the
    samples alone; None for `paper` on a task the paper did not run."""
    if scoring == "sss":
        total, by_task = summarize, summarize_by_task
    else:
        rules = paper_rules(task_name)
        if rules is None:
            return None
        total = lambda s: paper_summarize(s, rules)  # noqa: E731
        by_task = lambda s: paper_summarize_by_task(s, rules)  # noqa: E731
    out: dict[str, Any] = {"metrics": total(samples)}
    if samples["lm_eval_task"].nunique() > 1:
        out["by_task"] = by_task(samples)
    return out


def rescore(run: Path, scoring: str = "sss") -> dict[str, Any] | None:
    """One metric set of a finished run, recomputed from its samples.parquet and config.yaml."""
    if scoring not in SCORINGS:
        raise ValueError(f"scoring {scoring!r}: expected one of {SCORINGS}")
    config = yaml.safe_load((Path(run) / "config.yaml").read_text())
    samples = pd.read_parquet(Path(run) / "samples.parquet")
    return scores(samples, config["task"]["name"], scoring)


def metrics_record(results: dict, samples: pd.DataFrame, config: dict) -> dict[str, Any]:
    task_names = sorted(samples["lm_eval_task"].unique())
    lm_eval_metrics = {name: _plain(results["results"][name]) for name in task_names}
    record = {
        "task": config["task"]["name"],
        "model": config["model"]["name"],
        "sampler": _sampler_label(config),
        "n_docs": int(samples[["lm_eval_task", "doc_id"]].drop_duplicates().shape[0]),
        "repeats": int(config["task"]["repeats"]),
        "metrics": summarize(samples),
        "lm_eval": {
            "results": lm_eval_metrics,
            "n-samples": _plain(results.get("n-samples", {})),
            "versions": _plain(results.get("versions", {})),
        },
        "mean_new_tokens": float(samples["new_tokens"].mean()),
    }
    if len(task_names) > 1:
        record["by_task"] = summarize_by_task(samples)
    paper = scores(samples, config["task"]["name"], "paper")
    if paper is not None:
        record["paper"] = paper
    return record


def _sampler_label(config: dict) -> str:
    from sss.runs.layout import sampler_params
    from sss.samplers import SamplerSpec

    return sampler_params(SamplerSpec.from_mapping(config["sampler"]))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
