"""The paper's sequence analyses (sss.analysis.traces) on hand-built traces whose every number is
known, the join by (lm_eval_task, doc_id, repeat) under shuffled rows, and job=analyze over a
sweep directory mixing runs with traces, without traces and with broken traces."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import ROOT
from test_analyze import analyze as analyze_probe
from trace_runs import Sample, hand_samples, make_trace_run, reference_events

from sss.analysis.traces import TraceError, TraceOptions, analyses, run_traces, sample_stats, vote

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def runs_of(root: Path) -> pd.DataFrame:
    from sss.analysis.table import runs_table
    from sss.runs.discovery import find_runs

    return runs_table(find_runs(root))


def tables_of(root: Path, options: TraceOptions | None = None):
    result = run_traces(runs_of(root), options or TraceOptions())
    return result, {
        name: t.drop(columns=["task", "model", "sampler", "params", "seed", "run_dir"])
        for name, t in result.tables.items()
    }


def rows(table: pd.DataFrame, key: str, *values: str) -> dict:
    return {row[key]: tuple(row[v] for v in values) for _, row in table.iterrows()}


def test_hand_built_traces_every_number(tmp_path):
    make_trace_run(tmp_path / "run", hand_samples())
    result, t = tables_of(tmp_path)
    assert result.analysed and not result.errors and not result.without

    # low-confidence steps (p_max < 0.3; 0.3 itself is not low) per sample:
    # doc 0: 1, 0, 2, 1; doc 1: 1, 2, 0, 1.  correct: T T F F / F T F F
    assert rows(t["low_conf_tokens"], "events", "samples", "correct", "accuracy") == {
        "0": (2, 1, 0.5),
        "1": (4, 1, 0.25),
        "2": (2, 1, 0.5),
    }

    # ranks at low-confidence steps: 1 (T), 3 and 2 (F), 12 (F) / 4 (F), 1 and 2 (T), 25 (F)
    ranks = t["sampled_rank"]
    assert rows(ranks[ranks["subset"] == "all"], "rank", "events", "correct", "accuracy") == {
        "1": (2, 2, 1.0),
        "2": (2, 1, 0.5),
        "3": (1, 0, 0.0),
        "4": (1, 0, 0.0),
        "10+": (2, 0, 0.0),
    }
    assert rows(ranks[ranks["subset"] == "one_event"], "rank", "events", "correct", "accuracy") == {
        "1": (1, 1, 1.0),
        "4": (1, 0, 0.0),
        "10+": (2, 0, 0.0),
    }

    assert rows(t["max_rank_bins"], "max_rank", "samples", "correct", "accuracy") == {
        "none": (2, 1, 0.5),
        "1-2": (2, 2, 1.0),
        "3-4": (2, 0, 0.0),
        "11-12": (1, 0, 0.0),
        "21+": (1, 0, 0.0),
    }

    # low-probability sampled tokens (p < 0.1): doc 0 repeats 1 (rank 2), 2 (rank 3), 3 (rank 12);
    # doc 1 repeat 3 (rank 25)
    assert rows(t["low_prob_tokens"], "events", "samples", "correct") == {"0": (4, 2), "1": (4, 1)}
    low_prob = t["low_prob_rank"]
    assert rows(low_prob[low_prob["subset"] == "all"], "rank", "events", "correct") == {
        "2": (1, 1),
        "3": (1, 0),
        "10+": (2, 0),
    }

    # mean rank <= 2, samples without events kept: doc 0 keeps repeats 0, 1 ("5", "5": right);
    # doc 1 keeps 1 ("7") and 2 (invalid): right. Plain vote: doc 0 ties 5/3, first is 5: right;
    # doc 1 votes "2": wrong.
    (pooled,) = t["conditioned_vote"].to_dict("records")
    assert pooled["questions"] == 2 and pooled["kept"] == 4 and pooled["questions_with_vote"] == 2
    assert pooled["plain_vote"] == 0.5 and pooled["conditioned_vote"] == 1.0
    per_question = t["conditioned_vote_questions"].set_index("doc_id")
    assert list(per_question["plain_winner"]) == [0, 0]
    assert list(per_question["conditioned_winner"]) == [0, 1]


def test_vote_options(tmp_path):
    make_trace_run(tmp_path / "run", hand_samples())
    # max rank <= 1: doc 1 keeps only repeat 2, whose answer is invalid: no vote, counted wrong
    _, t = tables_of(tmp_path, TraceOptions(vote_rank_stat="max", vote_rank_cap=1))
    (pooled,) = t["conditioned_vote"].to_dict("records")
    assert pooled["questions_with_vote"] == 1 and pooled["conditioned_vote"] == 0.5
    assert pooled["conditioned_vote_where_kept"] == 1.0 and pooled["plain_vote_where_kept"] == 1.0
    assert t["conditioned_vote_questions"]["conditioned_winner"].isna().tolist() == [False, True]
    # an event needed: repeats without low-confidence steps go; doc 0 keeps 0, doc 1 keeps 1
    _, t = tables_of(tmp_path, TraceOptions(vote_need_event=True))
    assert t["conditioned_vote_questions"]["kept"].tolist() == [1, 1]
    assert t["conditioned_vote"]["conditioned_vote"].item() == 1.0


def test_vote_is_the_metrics_vote(tmp_path):
    """The vectorised vote against sss.evaluation.metrics.majority_vote on random answers."""
    from sss.evaluation.metrics import majority_vote

    rng = np.random.default_rng(7)
    frame = pd.DataFrame(
        {
            "run_dir": "r",
            "lm_eval_task": "t",
            "doc_id": np.repeat(np.arange(300), 6),
            "repeat": np.tile(np.arange(6), 300),
            "answer": rng.choice(["1", "2", "3", "[invalid]"], 1800, p=[0.3, 0.3, 0.2, 0.2]),
        }
    )
    frame["correct"] = frame["answer"] == "2"
    frame = frame.sample(frac=1, random_state=1)  # order must not matter
    got = vote(frame).set_index("doc_id")
    for doc, group in frame.sort_values("repeat").groupby("doc_id"):
        winner = majority_vote(list(group["answer"]))
        expected = None if winner is None else int(group["repeat"].iloc[winner])
        assert (
            pd.isna(got.loc[doc, "winner_repeat"]) if expected is None else got.loc[doc, "winner_repeat"] == expected
        ), doc
        assert got.loc[doc, "vote_correct"] == (winner is not None and bool(group["correct"].iloc[winner]))


def test_until_answer_counts_only_steps_before_the_phrase(tmp_path):
    samples = hand_samples()
    make_trace_run(tmp_path / "run", samples)
    stats = sample_stats(tmp_path / "run", TraceOptions(until_answer=True), task="arith")
    stats = stats.set_index(["doc_id", "repeat"])
    for s in samples:
        ref = reference_events(s, until_answer=True)
        row = stats.loc[(s.doc_id, s.repeat)]
        assert row["low_conf_events"] == len(ref["low_conf"]), (s.doc_id, s.repeat)
        assert row["low_prob_events"] == len(ref["low_prob"]), (s.doc_id, s.repeat)
        assert row["steps"] == len(s.steps)  # every step is still checked against new_tokens
        assert row["counted_steps"] == (len(s.steps) if s.answer_at is None else s.answer_at)
    # doc 0 repeat 2 keeps its rank-3 step only; doc 1 repeat 1 its rank-1 step only
    assert stats.loc[(0, 2), "low_conf_max_rank"] == 3 and stats.loc[(1, 1), "low_conf_max_rank"] == 1


def random_samples(rng: np.random.Generator, tasks=("t_a", "t_b"), docs=5, repeats=3) -> list[Sample]:
    out = []
    for task in tasks:
        for doc in range(docs):
            for repeat in range(repeats):
                n = int(rng.integers(0, 40))
                steps = [
                    (float(pm), int(r), float(min(pm, p)))
                    for pm, r, p in zip(rng.uniform(0.05, 1, n), rng.integers(1, 30, n), rng.uniform(0.001, 1, n))
                ]
                answer = str(rng.integers(0, 3))
                out.append(
                    Sample(
                        doc,
                        repeat,
                        answer,
                        answer == "1",
                        steps,
                        answer_at=int(rng.integers(0, n)) if n and rng.random() < 0.7 else None,
                        lm_eval_task=task,
                    )
                )
    return out


@pytest.mark.parametrize("until_answer", [False, True])
def test_join_by_key_under_shuffled_rows(tmp_path, until_answer):
    """Shuffling the rows of both tables changes nothing; every count matches a plain loop."""
    rng = np.random.default_rng(11)
    samples = random_samples(rng)
    make_trace_run(tmp_path / "a" / "run", samples)
    make_trace_run(tmp_path / "b" / "run", samples)
    shuffled = tmp_path / "b" / "run"
    table = pq.read_table(shuffled / "tokens.parquet")
    pq.write_table(table.take(rng.permutation(table.num_rows)), shuffled / "tokens.parquet", row_group_size=37)
    frame = pd.read_parquet(shuffled / "samples.parquet")
    frame.sample(frac=1, random_state=3).to_parquet(shuffled / "samples.parquet", index=False)

    options = TraceOptions(until_answer=until_answer)
    key = ["lm_eval_task", "doc_id", "repeat"]
    first = sample_stats(tmp_path / "a" / "run", options).sort_values(key).reset_index(drop=True)
    second = sample_stats(shuffled, options).sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(first, second)

    by_key = first.set_index(key)
    for s in samples:
        ref = reference_events(s, until_answer=until_answer)
        row = by_key.loc[(s.lm_eval_task, s.doc_id, s.repeat)]
        for kind in ("low_conf", "low_prob"):
            assert row[f"{kind}_events"] == len(ref[kind])
            if ref[kind]:
                assert row[f"{kind}_max_rank"] == max(ref[kind])
                assert row[f"{kind}_mean_rank"] == pytest.approx(np.mean(ref[kind]))
            for r in range(1, 11):
                assert row[f"{kind}_rank_{r}"] == sum(1 for x in ref[kind] if min(x, 10) == r)
        assert row["correct"] == s.correct and row["answer"] == s.answer


def test_pooled_tables_agree_with_a_recount(tmp_path):
    rng = np.random.default_rng(5)
    samples = random_samples(rng, docs=8, repeats=4)
    make_trace_run(tmp_path / "run", samples)
    _, t = tables_of(tmp_path)
    events = [(s, reference_events(s)) for s in samples]
    for _, row in t["low_conf_tokens"].iterrows():
        mine = [s for s, e in events if min(len(e["low_conf"]), 20) == row["order"]]
        assert row["samples"] == len(mine) and row["correct"] == sum(s.correct for s in mine)
    ranks = t["sampled_rank"]
    for _, row in ranks[ranks["subset"] == "all"].iterrows():
        hits = [(s.correct) for s, e in events for r in e["low_conf"] if min(r, 10) == row["order"]]
        assert row["events"] == len(hits) and row["correct"] == sum(hits)
    for _, row in t["max_rank_bins"].iterrows():
        mine = [
            s
            for s, e in events
            if (0 if not e["low_conf"] else min(math.ceil(max(e["low_conf"]) / 2), 11)) == row["order"]
        ]
        assert row["samples"] == len(mine)


def test_trace_that_does_not_match_its_samples_is_refused(tmp_path):
    samples = hand_samples()
    run = make_trace_run(tmp_path / "run", samples)
    table = pq.read_table(run / "tokens.parquet")
    pq.write_table(table.slice(0, table.num_rows - 1), run / "tokens.parquet")  # one step short
    with pytest.raises(TraceError, match="do not match their new_tokens") as info:
        sample_stats(run, TraceOptions())
    assert str(run / "tokens.parquet") in str(info.value)

    frame = table.to_pandas()
    frame.loc[frame["doc_id"] == 1, "doc_id"] = 9  # samples that samples.parquet does not have
    frame.to_parquet(run / "tokens.parquet", index=False)
    with pytest.raises(TraceError, match="not in samples.parquet"):
        sample_stats(run, TraceOptions())


def analyze(*overrides: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    return subprocess.run(
        [sys.executable, str(ROOT / "launch.py"), "job=analyze", *overrides],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_analyze_sweep_with_and_without_traces_and_broken_ones(tmp_path):
    root = tmp_path / "outputs"
    samples = hand_samples()
    flipped = [Sample(s.doc_id, s.repeat, s.answer, not s.correct, s.steps, s.answer_at) for s in samples]
    good = make_trace_run(root / "1", samples, sampler="min_p", params={"min_p": 0.1})
    other = make_trace_run(root / "2", flipped, sampler="min_p", params={"min_p": 0.2})
    plain = make_trace_run(root / "3", samples, sampler="min_p", params={"min_p": 0.3}, tokens=False)
    truncated = make_trace_run(root / "4", samples, sampler="min_p", params={"min_p": 0.4})
    blob = (truncated / "tokens.parquet").read_bytes()
    (truncated / "tokens.parquet").write_bytes(blob[: len(blob) // 2])
    corrupt = make_trace_run(root / "5", samples, sampler="min_p", params={"min_p": 0.5})
    (corrupt / "tokens.parquet").write_bytes(b"PAR1 this is not a parquet file PAR1")

    result = analyze_probe(f"analyze.input={root}")  # the real entrypoint, reporting heavy imports
    assert result.returncode == 0, result.stderr[-3000:]
    assert "HEAVY=[]" in result.stdout  # the trace analyses import no torch, transformers, lm_eval
    out = root / "analysis"
    runs = pd.read_parquet(out / "runs.parquet")
    assert len(runs) == 5 and (runs["status"] == "done").all()  # every run still in the table

    per_sample = pd.read_parquet(out / "trace_samples.parquet")
    assert sorted(per_sample["run_dir"].unique()) == sorted(str(p.resolve()) for p in (good, other))
    counts = pd.read_parquet(out / "low_conf_tokens.parquet")
    by_run = {run: rows(frame, "events", "samples", "correct") for run, frame in counts.groupby("run_dir")}
    assert by_run[str(good.resolve())] == {"0": (2, 1), "1": (4, 1), "2": (2, 1)}
    assert by_run[str(other.resolve())] == {"0": (2, 1), "1": (4, 3), "2": (2, 1)}
    assert pd.read_csv(out / "low_conf_tokens.csv").shape == counts.shape

    report = (out / "report.md").read_text()
    section = report.split("## Token traces")[1].split("## Figures")[0]
    assert "2 runs analysed, 1 finished runs without tokens.parquet skipped, 2 with unreadable traces" in section
    for broken in (truncated, corrupt):
        assert f"{broken.resolve() / 'tokens.parquet'}: cannot be read" in section
        assert f"{broken.resolve() / 'tokens.parquet'}" in result.stdout
    names = {p.name for p in (out / "figures").glob("*.png")}
    for name in (
        "low_conf_tokens",
        "sampled_rank",
        "max_rank_bins",
        "conditioned_vote",
        "low_prob_tokens",
        "low_prob_rank",
    ):
        figure = out / "figures" / f"{name}__arith__tiny.png"
        assert figure.name in names and figure.read_bytes()[:8] == PNG_MAGIC
        assert f"(figures/{figure.name})" in report
    assert json.loads((plain / "metrics.json").read_text())["metrics"]  # untouched inputs


def test_analyze_without_any_traces_says_so(tmp_path):
    make_trace_run(tmp_path / "outputs" / "1", hand_samples(), tokens=False)
    result = analyze(f"analyze.input={tmp_path / 'outputs'}")
    assert result.returncode == 0, result.stderr[-3000:]
    report = (tmp_path / "outputs" / "analysis" / "report.md").read_text()
    assert "None of the 1 finished runs has tokens.parquet" in report
    assert not (tmp_path / "outputs" / "analysis" / "low_conf_tokens.parquet").exists()


@pytest.mark.parametrize(
    "override, words",
    [
        ("analyze.low_conf=0", "analyze.low_conf = 0.0 is not allowed"),  # a float, as the schema types it
        ("analyze.sampled_prob=1.5", "analyze.sampled_prob = 1.5 is not allowed"),
        ("analyze.vote_rank_stat=median", "analyze.vote_rank_stat = 'median' is not allowed"),
        ("analyze.vote_rank_cap=0.5", "analyze.vote_rank_cap = 0.5 is not allowed"),
        ("analyze.until_answer=maybe", "analyze.until_answer = 'maybe' is not allowed"),
    ],
)
def test_analyze_options_are_checked(tmp_path, override, words):
    make_trace_run(tmp_path / "1", hand_samples())
    result = analyze(f"analyze.input={tmp_path}", override)
    assert result.returncode == 2 and words in result.stderr, result.stderr[-2000:]


def test_analyses_from_the_written_per_sample_table(tmp_path):
    """The tables are a function of trace_samples.parquet alone: recomputing from it agrees."""
    make_trace_run(tmp_path / "run", random_samples(np.random.default_rng(2)))
    result = run_traces(runs_of(tmp_path), TraceOptions())
    path = tmp_path / "trace_samples.parquet"
    result.samples.to_parquet(path, index=False)
    again = analyses(pd.read_parquet(path), TraceOptions())
    for name, table in result.tables.items():
        pd.testing.assert_frame_equal(
            table.reset_index(drop=True), again[name].reset_index(drop=True), check_dtype=False
        )


def test_run_without_any_event(tmp_path):
    confident = [Sample(d, r, "1", d == 0, [(0.95, 1, 0.95)] * (3 + r)) for d in range(2) for r in range(2)]
    make_trace_run(tmp_path / "run", confident)
    result, t = tables_of(tmp_path)
    assert rows(t["low_conf_tokens"], "events", "samples", "correct") == {"0": (4, 2)}
    assert t["sampled_rank"].empty and t["low_prob_rank"].empty
    assert rows(t["max_rank_bins"], "max_rank", "samples") == {"none": (4,)}
    vote_table = t["conditioned_vote"]
    assert vote_table["conditioned_vote"].item() == vote_table["plain_vote"].item() == 0.5
    assert (result.samples["low_conf_events"] == 0).all() and result.samples["low_conf_max_rank"].isna().all()


def test_figures_pool_runs_per_sampler_beyond_the_legend(tmp_path):
    from sss.analysis.trace_figures import LEGEND_MAX, _per_model, trace_figures

    samples = hand_samples()
    for i in range(LEGEND_MAX + 2):
        make_trace_run(
            tmp_path / f"r{i}",
            samples,
            sampler="min_p" if i % 2 else "top_p",
            params={"min_p" if i % 2 else "top_p": 0.01 * (i + 1)},
        )
    result, _ = tables_of(tmp_path)
    counts = result.tables["low_conf_tokens"]
    ((_, _, pooled),) = list(_per_model(counts, "samples", ("events",)))
    assert sorted(pooled["run"].unique()) == ["min_p (9 runs pooled)", "top_p (9 runs pooled)"]
    # each of the 9 identical runs has 2, 4, 2 samples at 0, 1, 2 events, 1 correct each
    assert rows(pooled[pooled["sampler"] == "min_p"], "events", "samples", "correct", "accuracy") == {
        "0": (18, 9, 0.5),
        "1": (36, 9, 0.25),
        "2": (18, 9, 0.5),
    }
    figures = trace_figures(result.tables, TraceOptions(), tmp_path)
    assert len(figures) == 6 and all(p.read_bytes()[:8] == PNG_MAGIC for p in figures)
