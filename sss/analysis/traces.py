"""The paper's sequence analyses over token traces (tokens.parquet) joined to samples.parquet.

Two kinds of *events* are counted in each sample (one generation):

- `low_conf`: a step whose raw top probability p_max < `analyze.low_conf` (default 0.3);
- `low_prob`: a step whose chosen token has raw probability p < `analyze.sampled_prob`
  (default 0.1), i.e. logprob < ln(sampled_prob).

Both thresholds are strict. With `analyze.until_answer=true` only the steps whose token ends at
or before the start of the task's answer phrase are counted ("The answer is" for the
chain-of-thought tasks, "\\boxed" for AIME); a sample without the phrase keeps all its steps.

Traces are reduced to one row per sample by DuckDB, reading each run's tokens.parquet once
(streaming, no Python per token); everything after that works on samples. Token rows join
their sample by (lm_eval_task, doc_id, repeat), never by order, and the number of rows of
each sample must equal its `new_tokens`: otherwise the run's traces are reported as broken.

Tables (one row per run and bin; `<name>.parquet` and `.csv`):

- `low_conf_tokens`: samples and accuracy by the number of low_conf events (0..19, 20+);
- `sampled_rank`: low_conf events and the accuracy of their samples by the rank sampled at the
  event (1..9, 10+), each event weighted once (`subset=all`), and the same over the samples
  with exactly one low_conf event (`subset=one_event`, one event per sample);
- `max_rank_bins`: samples and accuracy by the largest rank sampled at a low_conf event, in
  bins 1-2, 3-4, ..., 19-20, 21+; samples without an event are the row `none`;
- `low_prob_tokens`, `low_prob_rank`: the first two for low_prob events;
- `conditioned_vote` (per run) and `conditioned_vote_questions` (per question): the majority
  vote over only the samples whose rank statistic at low_conf events (`analyze.vote_rank_stat`:
  the mean or the max of those ranks) is <= `analyze.vote_rank_cap`, samples without a low_conf
  event kept unless `analyze.vote_need_event=true`, against the plain vote over all samples of
  the same questions. A vote is that of sss.evaluation.metrics (invalid answers do not vote, a
  tie goes to the answer reached first); a question left without a valid vote counts wrong.
- `trace_samples` (Parquet only): the per-sample reduction all of the above are computed from.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sss.evaluation.answers import INVALID

TOKENS = "tokens.parquet"
SAMPLES = "samples.parquet"
KEYS = ["lm_eval_task", "doc_id", "repeat"]
QUESTION = ["lm_eval_task", "doc_id"]
RUN_COLUMNS = ["task", "model", "sampler", "params", "seed", "run_dir"]
KINDS = ("low_conf", "low_prob")
RANK_BUCKETS = 10  # ranks 1..9, then 10+
COUNT_CAP = 20  # event counts 0..19, then 20+
MAX_RANK_TOP = 20  # max-rank bins of width 2 up to 20, then 21+
VOTE_RANK_STATS = ("mean", "max")
TOKEN_COLUMNS = ("lm_eval_task", "doc_id", "repeat", "step", "logprob", "rank", "p_max", "text_end")

# Where the answer starts in a response, by Hydra task name (until_answer); the default is the
# chain-of-thought tasks' phrase.
ANSWER_PHRASES = {"aime24": r"\\boxed", "aime25": r"\\boxed"}
DEFAULT_ANSWER_PHRASE = r"[Tt]he answer is"


@dataclass(frozen=True)
class TraceOptions:
    low_conf: float = 0.3
    sampled_prob: float = 0.1
    vote_rank_stat: str = "mean"
    vote_rank_cap: float = 2.0
    vote_need_event: bool = False
    until_answer: bool = False

    @classmethod
    def from_config(cls, options: dict) -> TraceOptions:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in options.items() if k in names and v is not None})


class TraceError(RuntimeError):
    """A run's traces cannot be analysed (unreadable, truncated, or not matching its samples)."""


def answer_phrase(task: str | None) -> str:
    return ANSWER_PHRASES.get(task or "", DEFAULT_ANSWER_PHRASE)


def answer_starts(responses: pd.Series, pattern: str) -> pd.Series:
    """Character offset of the first answer phrase in each response; <NA> where there is none."""
    compiled = re.compile(pattern)
    starts = [m.start() if (m := compiled.search(text or "")) else None for text in responses]
    return pd.Series(starts, index=responses.index, dtype="Int64")


# -- per-sample reduction (DuckDB) ---------------------------------------------------------


def _scan(until_answer: bool) -> tuple[str, str]:
    """The token rows with a `counted` flag (until_answer: the step ends at or before the answer
    phrase's start, or the sample has no phrase)."""
    if not until_answer:
        return "read_parquet($path) t", "true"
    return (
        "read_parquet($path) t LEFT JOIN starts s ON t.lm_eval_task = s.lm_eval_task "
        'AND t.doc_id = s.doc_id AND t."repeat" = s."repeat"',
        "(s.answer_start IS NULL OR t.text_end <= s.answer_start)",
    )


def _totals_sql(until_answer: bool) -> str:
    """Per sample: its rows and step range (checked against samples.parquet), counted steps."""
    source, counted = _scan(until_answer)
    return f"""
        SELECT CAST(t.lm_eval_task AS VARCHAR) AS lm_eval_task, t.doc_id, t."repeat",
               count(*) AS steps, min(t.step) AS min_step, max(t.step) AS max_step,
               count(*) FILTER (WHERE {counted}) AS counted_steps
        FROM {source} GROUP BY ALL
    """


def _events_sql(until_answer: bool) -> str:
    """Per sample, kind of event and rank bucket: events, largest rank, sum of ranks. Only the
    event rows (a small share of all) reach the aggregation: one pass, two cheap filters."""
    source, counted = _scan(until_answer)
    return f"""
        SELECT CAST(t.lm_eval_task AS VARCHAR) AS lm_eval_task, t.doc_id, t."repeat",
               t.p_max < $low_conf AS low_conf, t.logprob < $log_sampled_prob AS low_prob,
               least(t.rank, {RANK_BUCKETS}) AS bucket,
               count(*) AS n, max(t.rank) AS max_rank, sum(t.rank) AS sum_rank
        FROM {source}
        WHERE (t.p_max < $low_conf OR t.logprob < $log_sampled_prob) AND {counted}
        GROUP BY ALL
    """


def _event_stats(events: pd.DataFrame) -> pd.DataFrame:
    """Per sample and kind: events, max and mean rank, and events per rank bucket (1..9, 10+),
    from the grouped event rows of `_events_sql`."""
    parts = []
    for kind in KINDS:
        rows = events[events[kind]]
        by_sample = rows.groupby(KEYS)
        stats = pd.DataFrame(
            {
                f"{kind}_events": by_sample["n"].sum(),
                f"{kind}_max_rank": by_sample["max_rank"].max(),
                f"{kind}_mean_rank": by_sample["sum_rank"].sum() / by_sample["n"].sum(),
            }
        )
        buckets = rows.groupby([*KEYS, "bucket"])["n"].sum().unstack(fill_value=0)
        buckets = buckets.reindex(columns=range(1, RANK_BUCKETS + 1), fill_value=0)
        buckets.columns = [f"{kind}_rank_{r}" for r in buckets.columns]
        parts.append(stats.join(buckets))
    return pd.concat(parts, axis=1)


def _connect(threads: int | None = None, memory_limit: str | None = None):
    import duckdb

    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute("SET preserve_insertion_order = false")  # group results need no order
    return con


def sample_stats(run_dir: Path, options: TraceOptions, task: str | None = None, con=None) -> pd.DataFrame:
    """One row per sample of a run: samples.parquet's key, answer and correctness, joined with
    the sample's event counts and ranks from tokens.parquet. Raises TraceError naming the file."""
    import duckdb

    run_dir = Path(run_dir)
    tokens = run_dir / TOKENS
    try:
        samples = pd.read_parquet(run_dir / SAMPLES, columns=[*KEYS, "response", "answer", "correct", "new_tokens"])
    except Exception as exc:
        raise TraceError(f"{run_dir / SAMPLES}: cannot be read ({type(exc).__name__}: {exc})") from exc
    samples["lm_eval_task"] = samples["lm_eval_task"].astype(str)
    samples["doc_id"] = samples["doc_id"].astype("int64")
    samples["repeat"] = samples["repeat"].astype("int64")

    con = con or _connect()
    params = {
        "path": str(tokens),
        "low_conf": float(options.low_conf),
        "log_sampled_prob": math.log(options.sampled_prob) if options.sampled_prob > 0 else -math.inf,
    }
    try:
        schema = con.execute("SELECT name FROM parquet_schema($path)", {"path": str(tokens)}).fetchall()
        missing = sorted(set(TOKEN_COLUMNS) - {name for (name,) in schema})
        if missing:
            raise TraceError(f"{tokens}: not a token trace (missing columns {missing})")
        if options.until_answer:
            starts = samples[KEYS].assign(answer_start=answer_starts(samples["response"], answer_phrase(task)))
            con.register("starts", starts)
        totals = con.execute(_totals_sql(options.until_answer), {"path": str(tokens)}).df()
        events = con.execute(_events_sql(options.until_answer), params).df()
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TraceError(f"{tokens}: cannot be read ({first})") from exc
    finally:
        if options.until_answer:
            con.unregister("starts")

    for frame in (totals, events):
        frame["doc_id"] = frame["doc_id"].astype("int64")
        frame["repeat"] = frame["repeat"].astype("int64")
    stats = totals.merge(_event_stats(events).reset_index(), on=KEYS, how="left")
    joined = samples.drop(columns="response").merge(stats, on=KEYS, how="outer", indicator=True, validate="one_to_one")
    extra = joined[joined["_merge"] == "right_only"]
    if len(extra):
        first = extra.iloc[0]
        raise TraceError(
            f"{tokens}: {len(extra)} traced samples are not in {SAMPLES} (first: "
            f"{first['lm_eval_task']} doc {first['doc_id']} repeat {first['repeat']})"
        )
    joined = joined.drop(columns="_merge")
    joined["steps"] = joined["steps"].fillna(0).astype("int64")
    bad = joined[
        (joined["steps"] != joined["new_tokens"])
        | ((joined["steps"] > 0) & ((joined["min_step"] != 0) | (joined["max_step"] != joined["steps"] - 1)))
    ]
    if len(bad):
        first = bad.iloc[0]
        raise TraceError(
            f"{tokens}: {len(bad)} samples whose token rows do not match their "
            f"new_tokens in {SAMPLES} or are not steps 0..n-1 (first: "
            f"{first['lm_eval_task']} doc {first['doc_id']} repeat {first['repeat']}: "
            f"{first['steps']} rows, new_tokens {first['new_tokens']})"
        )
    counts = [c for c in joined.columns if c.endswith("_events") or "_rank_" in c or c == "counted_steps"]
    joined[counts] = joined[counts].fillna(0).astype("int64")
    joined["correct"] = joined["correct"].astype(bool)
    return joined.drop(columns=["min_step", "max_step"])


# -- analyses over the per-sample table -----------------------------------------------------


def _count_label(n: int) -> str:
    return f"{COUNT_CAP}+" if n >= COUNT_CAP else str(n)


def _with_ident(samples: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Prefix a table keyed by run_dir with the run's identity columns (grouping by run_dir
    alone and joining the identity after is much faster than grouping by every column)."""
    ident = samples[RUN_COLUMNS].drop_duplicates("run_dir")
    return ident.merge(table, on="run_dir", how="right")[[*RUN_COLUMNS, *[c for c in table.columns if c != "run_dir"]]]


def _by_bucket(samples: pd.DataFrame, bucket: np.ndarray) -> pd.DataFrame:
    """Samples, correct samples and accuracy per (run, bucket)."""
    frame = pd.DataFrame(
        {"run_dir": samples["run_dir"].to_numpy(), "order": bucket, "correct": samples["correct"].to_numpy()}
    )
    out = frame.groupby(["run_dir", "order"])["correct"].agg(samples="size", correct="sum").reset_index()
    out["correct"] = out["correct"].astype("int64")
    out["accuracy"] = out["correct"] / out["samples"]
    return out


def event_count_table(samples: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Samples and accuracy by the number of `kind` events per sample (0..19, 20+)."""
    out = _by_bucket(samples, samples[f"{kind}_events"].clip(upper=COUNT_CAP).to_numpy())
    out.insert(1, "events", out["order"].map(_count_label))
    return _with_ident(samples, out)


def rank_table(samples: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Events and the accuracy of their samples by the rank sampled at the event (1..9, 10+),
    over all samples (each event once) and over samples with exactly one such event."""
    columns = [f"{kind}_rank_{r}" for r in range(1, RANK_BUCKETS + 1)]
    parts = []
    for subset, frame in (("all", samples), ("one_event", samples[samples[f"{kind}_events"] == 1])):
        counts = frame[columns].set_axis(range(1, RANK_BUCKETS + 1), axis=1)
        events = counts.groupby(frame["run_dir"]).sum()
        right = counts.mul(frame["correct"].astype("int64"), axis=0).groupby(frame["run_dir"]).sum()
        long = pd.DataFrame({"events": events.stack(), "correct": right.stack()})
        long.index.names = ["run_dir", "order"]
        parts.append(long.reset_index().assign(subset=subset))
    out = pd.concat(parts, ignore_index=True)
    out = out[out["events"] > 0].copy()
    out["rank"] = out["order"].map(lambda r: f"{RANK_BUCKETS}+" if r >= RANK_BUCKETS else str(r))
    out["accuracy"] = out["correct"] / out["events"]
    out = out[["run_dir", "subset", "rank", "order", "events", "correct", "accuracy"]]
    return _with_ident(samples, out).sort_values(["run_dir", "subset", "order"]).reset_index(drop=True)


def max_rank_table(samples: pd.DataFrame, kind: str = "low_conf") -> pd.DataFrame:
    """Samples and accuracy by the largest rank sampled at an event (1-2, ..., 19-20, 21+;
    `none`: no event)."""
    top = samples[f"{kind}_max_rank"].astype("float64")
    order = np.where(top.isna(), 0, np.minimum(np.ceil(top.fillna(1) / 2), MAX_RANK_TOP // 2 + 1))
    out = _by_bucket(samples, order.astype(int))

    def label(o: int) -> str:
        if o == 0:
            return "none"
        return f"{MAX_RANK_TOP + 1}+" if o > MAX_RANK_TOP // 2 else f"{2 * o - 1}-{2 * o}"

    out.insert(1, "max_rank", out["order"].map(label))
    return _with_ident(samples, out)


def vote(samples: pd.DataFrame, keep: pd.Series | None = None) -> pd.DataFrame:
    """The majority vote of each question (run_dir, lm_eval_task, doc_id) over the kept samples:
    `winner_repeat` (the first sample carrying the most frequent valid answer; <NA> if none)
    and `vote_correct`. The rule of sss.evaluation.metrics.majority_vote, without a loop."""
    group = ["run_dir", *QUESTION]
    questions = samples[group].drop_duplicates()
    frame = samples if keep is None else samples[keep]
    valid = frame[frame["answer"] != INVALID]
    counts = valid.groupby([*group, "answer"], dropna=False)["repeat"].agg(n="size", first="min").reset_index()
    counts = counts.sort_values([*group, "n", "first"], ascending=[True] * len(group) + [False, True])
    winners = counts.drop_duplicates(group)[[*group, "first"]].rename(columns={"first": "repeat"})
    winners = winners.merge(samples[[*group, "repeat", "correct"]], on=[*group, "repeat"], how="left")
    out = questions.merge(winners, on=group, how="left")
    out = out.rename(columns={"repeat": "winner_repeat", "correct": "vote_correct"})
    out["winner_repeat"] = out["winner_repeat"].astype("Int64")
    out["vote_correct"] = out["vote_correct"].fillna(False).astype(bool)
    return out


def conditioned_vote(samples: pd.DataFrame, options: TraceOptions) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per run, per question): the vote over samples whose low_conf rank statistic stays within
    the cap, against the plain vote over all samples of the same questions."""
    stat = samples[f"low_conf_{options.vote_rank_stat}_rank"]
    no_event = samples["low_conf_events"] == 0
    keep = (stat <= options.vote_rank_cap).fillna(False) | (no_event & (not options.vote_need_event))
    plain = vote(samples)
    conditioned = vote(samples, keep)
    kept = (
        samples.assign(kept=keep.to_numpy())
        .groupby(["run_dir", *QUESTION])["kept"]
        .agg(samples="size", kept="sum")
        .reset_index()
    )
    per_question = (
        plain.rename(columns={"winner_repeat": "plain_winner", "vote_correct": "plain_correct"})
        .merge(
            conditioned.rename(columns={"winner_repeat": "conditioned_winner", "vote_correct": "conditioned_correct"}),
            on=["run_dir", *QUESTION],
        )
        .merge(kept, on=["run_dir", *QUESTION])
    )
    ident = samples[RUN_COLUMNS].drop_duplicates("run_dir")
    per_question = ident.merge(per_question, on="run_dir")
    per_question["kept"] = per_question["kept"].astype("int64")
    has_vote = per_question["conditioned_winner"].notna()
    pooled = (
        per_question.assign(
            has_vote=has_vote,
            plain_where=per_question["plain_correct"].where(has_vote),
            cond_where=per_question["conditioned_correct"].where(has_vote),
        )
        .groupby(RUN_COLUMNS, dropna=False)
        .agg(
            questions=("doc_id", "size"),
            samples=("samples", "sum"),
            kept=("kept", "sum"),
            questions_with_vote=("has_vote", "sum"),
            plain_vote=("plain_correct", "mean"),
            conditioned_vote=("conditioned_correct", "mean"),
            plain_vote_where_kept=("plain_where", "mean"),
            conditioned_vote_where_kept=("cond_where", "mean"),
        )
        .reset_index()
    )
    pooled.insert(
        len(RUN_COLUMNS),
        "rule",
        f"{options.vote_rank_stat} low_conf rank <= "
        f"{options.vote_rank_cap:g}" + (", an event needed" if options.vote_need_event else ""),
    )
    return pooled, per_question


def analyses(samples: pd.DataFrame, options: TraceOptions) -> dict[str, pd.DataFrame]:
    """Every table of the module docstring from the per-sample table of one or more runs."""
    pooled, per_question = conditioned_vote(samples, options)
    return {
        "low_conf_tokens": event_count_table(samples, "low_conf"),
        "sampled_rank": rank_table(samples, "low_conf"),
        "max_rank_bins": max_rank_table(samples, "low_conf"),
        "conditioned_vote": pooled,
        "conditioned_vote_questions": per_question,
        "low_prob_tokens": event_count_table(samples, "low_prob"),
        "low_prob_rank": rank_table(samples, "low_prob"),
    }


@dataclass
class TraceResult:
    samples: pd.DataFrame  # per-sample table of every analysed run
    tables: dict[str, pd.DataFrame]  # name -> table (empty when no run had traces)
    analysed: list[str]  # run dirs whose traces were analysed
    without: list[str]  # finished runs without tokens.parquet
    errors: dict[str, str]  # run dir -> why its traces could not be analysed


def run_traces(
    done: pd.DataFrame,
    options: TraceOptions,
    progress: bool = False,
    threads: int | None = None,
    memory_limit: str | None = None,
) -> TraceResult:
    """Reduce the traces of every finished run in a runs table (sss.analysis.table) that has
    them, then compute the analyses. A broken trace file is an error of its run only."""
    from .table import param_columns, params_label

    params = param_columns(done)
    rows = list(done.iterrows())
    if progress:
        from tqdm import tqdm

        rows = tqdm(rows, desc="reading traces", unit="run")
    con = _connect(threads, memory_limit)
    parts, analysed, without, errors = [], [], [], {}
    for _, row in rows:
        run = Path(row["run_dir"])
        if not (run / TOKENS).is_file():
            without.append(str(run))
            continue
        try:
            stats = sample_stats(run, options, task=row.get("task"), con=con)
        except TraceError as exc:
            errors[str(run)] = str(exc)
            continue
        ident = {
            "task": row.get("task"),
            "model": row.get("model"),
            "sampler": row.get("sampler"),
            "params": params_label(row, params),
            "seed": row.get("seed"),
            "run_dir": str(run),
        }
        parts.append(stats.assign(**ident))
        analysed.append(str(run))
    if not parts:
        return TraceResult(pd.DataFrame(), {}, analysed, without, errors)
    samples = pd.concat(parts, ignore_index=True)
    samples = samples[[*RUN_COLUMNS, *[c for c in samples.columns if c not in RUN_COLUMNS]]]
    return TraceResult(samples, analyses(samples, options), analysed, without, errors)


def write_tables(result: TraceResult, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, table in {"trace_samples": result.samples, **result.tables}.items():
        if table.empty:
            continue
        # trace_samples (a row per sample, hundreds of thousands in a sweep) only as Parquet
        for suffix in (".parquet",) if name == "trace_samples" else (".parquet", ".csv"):
            path = folder / f"{name}{suffix}"
            (table.to_parquet(path, index=False) if suffix == ".parquet" else table.to_csv(path, index=False))
            written.append(path)
    return written
