"""Run directories with token traces, built for the trace tests the way job=evaluate writes them:
config.yaml, manifest.json, samples.parquet (one row per lm-eval task, doc, repeat), metrics.json
(sss.evaluation.metrics.summarize of those samples), tokens.parquet (sss.tracing's writer), DONE.

A sample is given as `Sample(doc_id, repeat, answer, correct, steps, answer_at)`, each step a
(p_max, rank, p_chosen) triple; `answer_at` is the step at which the answer phrase starts in the
response (None: no phrase). The response is "ab" per step before the phrase, so step i ends at
character 2 * (i + 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

TASK = "arith"


@dataclass
class Sample:
    doc_id: int
    repeat: int
    answer: str
    correct: bool
    steps: list[tuple[float, int, float]]
    answer_at: int | None = None
    lm_eval_task: str = TASK

    @property
    def response(self) -> str:
        if self.answer_at is None:
            return "ab" * len(self.steps)
        return "ab" * self.answer_at + f"The answer is {self.answer}."


def trace_of(sample: Sample, top_k: int = 0):
    from sss.engines.base import TokenTrace

    n = len(sample.steps)
    p_max = np.array([s[0] for s in sample.steps], dtype=np.float32)
    rank = np.array([s[1] for s in sample.steps], dtype=np.int32)
    p = np.array([s[2] for s in sample.steps], dtype=np.float64)
    trace = TokenTrace(
        token_ids=np.arange(100, 100 + n, dtype=np.int64) + 1000 * sample.doc_id + 10 * sample.repeat,
        logprob=np.log(p).astype(np.float32),
        rank=rank,
        p_max=p_max,
        entropy=np.full(n, 1.5, dtype=np.float32),
        kept=np.full(n, 7, dtype=np.int32),
        text_end=2 * np.arange(1, n + 1, dtype=np.int32),
    )
    if top_k:
        trace.top_ids = np.tile(np.arange(top_k, dtype=np.int64), (n, 1))
        trace.top_logprobs = np.tile(np.log(np.linspace(0.5, 0.01, top_k)).astype(np.float32), (n, 1))
    return trace


def make_trace_run(
    folder: Path,
    samples: list[Sample],
    sampler: str = "temperature",
    params: dict | None = None,
    seed: int = 0,
    tokens: bool = True,
    task: str = TASK,
    model: str = "tiny",
) -> Path:
    from sss.evaluation.metrics import summarize
    from sss.runs.layout import RunDir, write_atomic, write_json
    from sss.runs.manifest import Manifest
    from sss.tracing import TokenTraceWriter

    params = params if params is not None else {"temperature": 1.0}
    run = RunDir(folder)
    repeats = max(s.repeat for s in samples) + 1
    config = {
        "seed": seed,
        "task": {"name": task, "limit": None, "repeats": repeats, "num_fewshot": 3, "max_gen_toks": 64},
        "model": {"name": model, "engine": "hf"},
        "sampler": params,
        "logging": {"tokens": tokens, "top_k": 0},
        "job": {"name": "evaluate"},
    }
    write_atomic(run.config, yaml.safe_dump(config))
    manifest = Manifest(
        {"task": task, "model": model, "sampler": sampler, "sampler_params": params, "seed": seed, "job": "evaluate"}
    )
    table = pd.DataFrame(
        [
            {
                "lm_eval_task": s.lm_eval_task,
                "doc_id": s.doc_id,
                "repeat": s.repeat,
                "prompt": "Q?",
                "response": s.response,
                "answer": s.answer,
                "target": "?",
                "correct": s.correct,
                "seed": seed,
                "new_tokens": len(s.steps),
            }
            for s in samples
        ]
    )
    table = table.sort_values(["lm_eval_task", "doc_id", "repeat"]).reset_index(drop=True)
    table.to_parquet(run.samples, index=False)
    write_json(
        run.metrics,
        {
            "task": task,
            "model": model,
            "sampler": sampler,
            "n_docs": int(table[["lm_eval_task", "doc_id"]].drop_duplicates().shape[0]),
            "repeats": repeats,
            "metrics": summarize(table),
        },
    )
    if tokens:
        with TokenTraceWriter(run.path / "tokens.parquet", row_group_rows=5) as writer:
            for s in samples:
                writer.add(s.lm_eval_task, s.doc_id, s.repeat, trace_of(s))
    write_json(run.manifest, manifest.finish("done"))
    run.mark_done()
    return folder


def hand_samples() -> list[Sample]:
    """Two questions x four repeats; every count of the analyses is worked out in the tests."""
    return [
        # doc 0, target 5
        Sample(0, 0, "5", True, [(0.9, 1, 0.9), (0.2, 1, 0.2), (0.9, 1, 0.9)]),
        Sample(0, 1, "5", True, [(0.9, 1, 0.9), (0.9, 2, 0.05)]),
        Sample(0, 2, "3", False, [(0.2, 3, 0.05), (0.25, 2, 0.2), (0.9, 1, 0.9)], answer_at=1),
        Sample(0, 3, "3", False, [(0.1, 12, 0.01)]),
        # doc 1, target 7
        Sample(1, 0, "2", False, [(0.2, 4, 0.15), (0.9, 1, 0.9)]),
        Sample(1, 1, "7", True, [(0.29, 1, 0.29), (0.29, 2, 0.28)], answer_at=1),
        Sample(1, 2, "[invalid]", False, [(0.9, 1, 0.9), (0.3, 1, 0.3)]),
        Sample(1, 3, "2", False, [(0.1, 25, 0.001)]),
    ]


def reference_events(
    sample: Sample, low_conf: float = 0.3, sampled_prob: float = 0.1, until_answer: bool = False
) -> dict[str, list[int]]:
    """The ranks sampled at each kind of event, by a plain loop over the hand-written steps (the
    float32 rounding of the stored trace included, as the analysis sees it)."""
    out = {"low_conf": [], "low_prob": []}
    for i, (p_max, rank, p) in enumerate(sample.steps):
        if until_answer and sample.answer_at is not None and 2 * (i + 1) > 2 * sample.answer_at:
            continue
        if float(np.float32(p_max)) < low_conf:
            out["low_conf"].append(rank)
        if float(np.float32(math.log(p))) < math.log(sampled_prob):
            out["low_prob"].append(rank)
    return out
