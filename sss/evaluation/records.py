"""samples.parquet and metrics.json from lm-eval's logged samples.

Rows are joined to the engine's per-sample records by (lm-eval task, doc id,
repeat), never by position; the answer of each repeat is lm-eval's filtered
response (the task's own extraction).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from .metrics import summarize, summarize_by_task


def samples_table(logged: dict[str, list[dict]], adapter, records: list[dict]) -> pd.DataFrame:
    """One row per (lm-eval task, doc, repeat), from lm-eval's samples of every task of the run."""
    scoring = adapter.scoring_module()
    rows = []
    for task, samples in logged.items():
        for sample in samples:
            doc = sample["doc"]
            # one generate_until instance per doc, holding every repeat
            (responses,) = sample["resps"]
            (answers,) = sample["filtered_resps"]
            if len(answers) != len(responses):
                raise RuntimeError(f"{task} doc {sample['doc_id']}: {len(responses)} responses but "
                                   f"{len(answers)} extracted answers")
            prompt = _prompt(sample)
            for repeat, (response, answer) in enumerate(zip(responses, answers)):
                rows.append({
                    "lm_eval_task": task, "doc_id": int(sample["doc_id"]), "repeat": repeat,
                    "prompt": prompt, "response": response, "answer": answer,
                    "target": scoring.target_of(doc), "correct": bool(scoring.is_correct(answer, doc)),
                })
    table = pd.DataFrame(rows)
    engine = pd.DataFrame(records).rename(columns={"task": "lm_eval_task"})
    table = table.merge(engine, on=["lm_eval_task", "doc_id", "repeat"], how="left",
                        validate="one_to_one")
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


def metrics_record(results: dict, samples: pd.DataFrame, config: dict) -> dict[str, Any]:
    task_names = sorted(samples["lm_eval_task"].unique())
    lm_eval_metrics = {name: _plain(results["results"][name]) for name in task_names}
    record = {
        "task": config["task"]["name"], "model": config["model"]["name"],
        "sampler": _sampler_label(config),
        "n_docs": int(samples[["lm_eval_task", "doc_id"]].drop_duplicates().shape[0]),
        "repeats": int(config["task"]["repeats"]),
        "metrics": summarize(samples),
        "lm_eval": {"results": lm_eval_metrics, "n-samples": _plain(results.get("n-samples", {})),
                    "versions": _plain(results.get("versions", {}))},
        "mean_new_tokens": float(samples["new_tokens"].mean()),
    }
    if len(task_names) > 1:
        record["by_task"] = summarize_by_task(samples)
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
