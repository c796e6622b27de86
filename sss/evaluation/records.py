"""samples.parquet and metrics.json from lm-eval's logged samples.

Rows are joined to the engine's per-sample records by (doc id, repeat); the
answer of each repeat is lm-eval's filtered response (the task's own extraction).
"""

from __future__ import annotations

from typing import Any

import pandas as pd


def samples_table(logged: list[dict], adapter, records: list[dict]) -> pd.DataFrame:
    scoring = adapter.scoring()
    rows = []
    for sample in logged:
        doc = sample["doc"]
        # one generate_until instance per doc, holding every repeat
        (responses,) = sample["resps"]
        (answers,) = sample["filtered_resps"]
        if len(answers) != len(responses):
            raise RuntimeError(f"doc {sample['doc_id']}: {len(responses)} responses but "
                               f"{len(answers)} extracted answers")
        for repeat, (response, answer) in enumerate(zip(responses, answers)):
            rows.append({
                "doc_id": int(sample["doc_id"]), "repeat": repeat, "response": response,
                "answer": answer, "target": scoring.target_of(doc),
                "correct": bool(scoring.is_correct(answer, doc)),
            })
    table = pd.DataFrame(rows)
    engine = pd.DataFrame(records).drop(columns=["task"])
    table = table.merge(engine, on=["doc_id", "repeat"], how="left", validate="one_to_one")
    if table["seed"].isna().any():
        raise RuntimeError("some samples have no engine record (doc id/repeat mismatch)")
    return table.sort_values(["doc_id", "repeat"]).reset_index(drop=True)


def metrics_record(results: dict, adapter, samples: pd.DataFrame, config: dict) -> dict[str, Any]:
    task_results = results["results"][adapter.lm_eval_task]
    lm_eval_metrics = {key.split(",")[0]: value for key, value in task_results.items()
                       if "," in key and "_stderr" not in key and isinstance(value, (int, float))}
    first = samples[samples["repeat"] == 0]
    metrics = {
        "accuracy": float(first["correct"].mean()),          # first sample per document
        "overall_correct": float(samples["correct"].mean()),  # all samples
    }
    return {
        "task": config["task"]["name"], "model": config["model"]["name"],
        "sampler": samples.attrs.get("sampler", _sampler_label(config)),
        "n_docs": int(samples["doc_id"].nunique()), "repeats": int(config["task"]["repeats"]),
        "metrics": metrics,
        "lm_eval": {"results": _plain(task_results), "n-samples": _plain(results.get("n-samples", {})),
                    "versions": _plain(results.get("versions", {}))},
        "mean_new_tokens": float(samples["new_tokens"].mean()),
    }


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
