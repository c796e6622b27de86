"""tokens.parquet: the writer's round trip, its row groups, its atomic publish and abort; the
`logging` config group and its checks."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sss.engines.base import TokenTrace
from sss.tracing import TokenTraceWriter, trace_schema


def random_trace(rng: np.random.Generator, n: int, top_k: int = 0) -> TokenTrace:
    trace = TokenTrace(
        token_ids=rng.integers(0, 50_000, n),
        logprob=np.log(rng.uniform(0.01, 1, n)).astype(np.float32),
        rank=rng.integers(1, 30, n).astype(np.int32),
        p_max=rng.uniform(0, 1, n).astype(np.float32),
        entropy=rng.uniform(0, 5, n).astype(np.float32),
        kept=rng.integers(1, 100, n).astype(np.int32),
        text_end=np.cumsum(rng.integers(1, 6, n)).astype(np.int32),
    )
    if top_k:
        trace.top_ids = rng.integers(0, 50_000, (n, top_k + 3))  # the engine may give more
        trace.top_logprobs = np.sort(np.log(rng.uniform(0.001, 1, (n, top_k + 3))), axis=1)[:, ::-1].astype(np.float32)
    return trace


@pytest.mark.parametrize("top_k", [0, 4])
def test_round_trip_in_row_groups(tmp_path, top_k):
    rng = np.random.default_rng(0)
    plan = [("arith", 3, 0, 7), ("bbh_cot_snarks", 0, 1, 0), ("arith", 3, 1, 12), ("gsm8k", 11, 0, 25)]
    traces = [random_trace(rng, n, top_k) for *_, n in plan]
    path = tmp_path / "tokens.parquet"
    writer = TokenTraceWriter(path, top_k=top_k, row_group_rows=10)
    for (task, doc, repeat, _), trace in zip(plan, traces):
        writer.add(task, doc, repeat, trace)
    assert writer.close() == path

    meta = pq.ParquetFile(path).metadata
    # 7 -> 7 buffered; 0 -> 7; 12 -> 19 >= 10: group 1; 25 -> 25: group 2
    assert meta.num_row_groups == 2 and meta.num_rows == 44
    table = pq.read_table(path)
    assert table.schema.equals(trace_schema(top_k))
    assert table.schema.field("lm_eval_task").type == pa.dictionary(pa.int32(), pa.string())
    frame = table.to_pandas()
    start = 0
    for (task, doc, repeat, n), trace in zip(plan, traces):
        rows = frame.iloc[start : start + n]
        start += n
        assert (rows["lm_eval_task"].astype(str) == task).all()
        assert (rows["doc_id"] == doc).all() and (rows["repeat"] == repeat).all()
        np.testing.assert_array_equal(rows["step"], np.arange(n))
        np.testing.assert_array_equal(rows["token_id"], trace.token_ids)
        for column, field in (
            ("logprob", "logprob"),
            ("rank", "rank"),
            ("p_max", "p_max"),
            ("entropy", "entropy"),
            ("kept", "kept"),
            ("text_end", "text_end"),
        ):
            np.testing.assert_array_equal(rows[column].to_numpy(), getattr(trace, field))
        if top_k:
            np.testing.assert_array_equal(
                np.stack(rows["top_ids"].to_numpy()).reshape(n, top_k) if n else np.empty((0, top_k)),
                trace.top_ids[:, :top_k],
            )
            np.testing.assert_array_equal(
                np.stack(rows["top_logprobs"].to_numpy()).reshape(n, top_k) if n else np.empty((0, top_k)),
                trace.top_logprobs[:, :top_k],
            )
        else:
            assert "top_ids" not in frame.columns


def test_nothing_is_published_before_close_and_abort_leaves_nothing(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "run" / "tokens.parquet"
    writer = TokenTraceWriter(path, row_group_rows=4)
    writer.add("arith", 0, 0, random_trace(rng, 9))  # two row groups written already
    assert writer.row_groups == 1 and not path.exists()
    temporaries = list(path.parent.glob(".tokens.parquet.*.tmp"))
    assert len(temporaries) == 1 and temporaries[0].stat().st_size > 0
    writer.abort()
    assert list(path.parent.iterdir()) == []
    with pytest.raises(RuntimeError, match="aborted"):
        writer.add("arith", 0, 1, random_trace(rng, 2))


def test_context_manager_aborts_on_error_and_replaces_an_old_table(tmp_path):
    rng = np.random.default_rng(2)
    path = tmp_path / "tokens.parquet"
    with TokenTraceWriter(path) as writer:
        writer.add("arith", 0, 0, random_trace(rng, 3))
    assert pq.read_table(path).num_rows == 3

    # a new attempt of the run drops the old table at once, and an error leaves none behind
    with pytest.raises(KeyboardInterrupt):
        with TokenTraceWriter(path) as writer:
            assert not path.exists()
            writer.add("arith", 0, 0, random_trace(rng, 5))
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []

    # the temporary of a killed attempt (never closed, never aborted) goes with the next attempt
    killed = TokenTraceWriter(path)
    killed.add("arith", 0, 0, random_trace(rng, 2))
    leftover = next(tmp_path.glob(".tokens.parquet.*.tmp"))
    with TokenTraceWriter(path) as writer:
        writer.add("arith", 0, 0, random_trace(rng, 4))
    assert not leftover.exists() and pq.read_table(path).num_rows == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokens.parquet"]


def test_empty_run_gives_an_empty_table_and_bad_traces_are_refused(tmp_path):
    path = TokenTraceWriter(tmp_path / "tokens.parquet", top_k=2).close()
    table = pq.read_table(path)
    assert table.num_rows == 0 and table.schema.equals(trace_schema(2))

    rng = np.random.default_rng(3)
    with TokenTraceWriter(tmp_path / "b.parquet", top_k=2) as writer:
        with pytest.raises(ValueError, match="no top_ids"):
            writer.add("arith", 0, 0, random_trace(rng, 3))  # top_k asked, none given
        short = random_trace(rng, 3)
        short.rank = short.rank[:2]
        with pytest.raises(ValueError, match="rank has shape"):
            writer.add("arith", 0, 0, short)
    with pytest.raises(ValueError, match="top_k"):
        TokenTraceWriter(tmp_path / "c.parquet", top_k=-1)


@pytest.mark.parametrize(
    "overrides, words",
    [
        (["logging.tokens=yes"], "logging.tokens = 'yes'"),
        (["logging=tokens", "logging.top_k=-2"], "logging.top_k = -2"),
        (["logging=tokens", "logging.top_k=1.5"], "logging.top_k = 1.5"),
        (["logging.top_k=3"], "unless logging.tokens=true"),
    ],
)
def test_bad_logging_settings_are_config_errors(overrides, words):
    """Types from the schema at compose time, ranges from LoggingSchema.check() (sss.schema)."""
    from conftest import ROOT
    from sss.config import ConfigError, validate
    from sss.schema import compose

    with pytest.raises(ConfigError, match="is not allowed") as info:
        validate(compose(["engine=dummy", *overrides], ROOT / "conf"))
    assert words in str(info.value)


def test_logging_groups_compose():
    from conftest import ROOT
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        default = compose("config")
        tokens = compose("config", overrides=["logging=tokens", "logging.top_k=8"])
    assert dict(default.logging) == {"tokens": False, "top_k": 0}
    assert dict(tokens.logging) == {"tokens": True, "top_k": 8}
