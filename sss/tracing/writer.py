"""`TokenTraceWriter`: one Parquet row per generated token, streamed in row groups.

Rows are buffered up to `row_group_rows` and then written as one row group, so memory stays
bounded however long the run. They go to a hidden temporary file beside the target, which
`close()` renames to `tokens.parquet` in one atomic step: a run that dies before its end
leaves no `tokens.parquet` (a half-written table would read as a valid, shorter one), and
`abort()` removes the temporary. Columns and units: docs/traces.md.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:  # annotations only: the writer needs numpy and pyarrow, not torch
    from sss.engines.base import TokenTrace

TOKENS_FILE = "tokens.parquet"
DEFAULT_ROW_GROUP_ROWS = 1 << 17  # ~131k tokens, ~5 MB of columns: a few long generations

# (column, Arrow type, TokenTrace field); the key columns come first.
KEY_COLUMNS = (
    ("lm_eval_task", pa.dictionary(pa.int32(), pa.string()), None),
    ("doc_id", pa.int64(), None),
    ("repeat", pa.int32(), None),
    ("step", pa.int32(), None),
)
VALUE_COLUMNS = (
    ("token_id", pa.int64(), "token_ids"),
    ("logprob", pa.float32(), "logprob"),
    ("rank", pa.int32(), "rank"),
    ("p_max", pa.float32(), "p_max"),
    ("entropy", pa.float32(), "entropy"),
    ("kept", pa.int32(), "kept"),
    ("text_end", pa.int32(), "text_end"),
)
TOP_COLUMNS = (("top_ids", pa.int64(), "top_ids"), ("top_logprobs", pa.float32(), "top_logprobs"))


def trace_schema(top_k: int = 0) -> pa.Schema:
    """The schema of tokens.parquet; `top_k > 0` adds the list columns top_ids/top_logprobs."""
    fields = [pa.field(name, kind, nullable=False) for name, kind, _ in (*KEY_COLUMNS, *VALUE_COLUMNS)]
    if top_k > 0:
        fields += [pa.field(name, pa.list_(kind), nullable=False) for name, kind, _ in TOP_COLUMNS]
    return pa.schema(fields)


class TokenTraceWriter:
    """Streams `TokenTrace`s of one run into `path` (normally `<run>/tokens.parquet`).

    with TokenTraceWriter(run / "tokens.parquet", top_k=0) as writer:
        writer.add("arith", doc_id=3, repeat=0, trace=generation.trace)

    Leaving the block normally publishes the file; leaving it by an exception aborts it.
    """

    def __init__(self, path: Path, top_k: int = 0, row_group_rows: int = DEFAULT_ROW_GROUP_ROWS):
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
            raise ValueError(f"top_k = {top_k!r} is not allowed: expected an integer >= 0")
        if row_group_rows < 1:
            raise ValueError(f"row_group_rows = {row_group_rows!r} is not allowed: expected >= 1")
        self.path = Path(path)
        self.top_k = top_k
        self.row_group_rows = row_group_rows
        self.schema = trace_schema(top_k)
        self.rows = 0  # rows written or buffered so far
        self.row_groups = 0  # row groups written so far
        self._buffer: list[pa.RecordBatch] = []
        self._buffered = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A table left by an earlier attempt of this run describes other generations, and the
        # temporary of an attempt that was killed (SIGKILL, out of memory) was never removed.
        self.path.unlink(missing_ok=True)
        for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            stale.unlink(missing_ok=True)
        self.state = "open"  # then "closed" (published) or "aborted"
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        os.close(fd)
        self._tmp: Path | None = Path(tmp)
        self._writer: pq.ParquetWriter | None = pq.ParquetWriter(self._tmp, self.schema, compression="zstd")

    # -- adding ---------------------------------------------------------------------------
    def add(self, lm_eval_task: str, doc_id: int, repeat: int, trace: TokenTrace) -> None:
        """Append the steps of one generation (one (task, doc_id, repeat) sample)."""
        if self.state != "open":
            raise RuntimeError(f"{self.path}: the trace writer is {self.state}")
        n = len(trace)
        columns: dict[str, pa.Array] = {
            "lm_eval_task": pa.DictionaryArray.from_arrays(
                np.zeros(n, dtype=np.int32), pa.array([str(lm_eval_task)], pa.string())
            ),
            "doc_id": pa.array(np.full(n, int(doc_id), dtype=np.int64)),
            "repeat": pa.array(np.full(n, int(repeat), dtype=np.int32)),
            "step": pa.array(np.arange(n, dtype=np.int32)),
        }
        for name, kind, field_name in VALUE_COLUMNS:
            values = np.asarray(getattr(trace, field_name))
            if values.shape != (n,):
                raise ValueError(
                    f"trace of {lm_eval_task} doc {doc_id} repeat {repeat}: "
                    f"{field_name} has shape {values.shape}, expected ({n},)"
                )
            columns[name] = pa.array(values.astype(kind.to_pandas_dtype(), copy=False))
        if self.top_k:
            for name, kind, field_name in TOP_COLUMNS:
                columns[name] = self._top_column(getattr(trace, field_name), n, kind, field_name)
        self._buffer.append(pa.RecordBatch.from_pydict(columns, schema=self.schema))
        self._buffered += n
        self.rows += n
        if self._buffered >= self.row_group_rows:
            self._flush()

    def _top_column(self, values, n: int, kind: pa.DataType, field_name: str) -> pa.Array:
        """The first top_k entries of each step as a list column (fewer if the engine had fewer)."""
        if values is None:
            raise ValueError(f"logging.top_k = {self.top_k} but the trace has no {field_name}")
        values = np.asarray(values)[:, : self.top_k].astype(kind.to_pandas_dtype(), copy=False)
        if values.shape[0] != n:
            raise ValueError(f"{field_name} has {values.shape[0]} rows, expected {n}")
        width = values.shape[1]
        offsets = pa.array(np.arange(n + 1, dtype=np.int32) * width)
        return pa.ListArray.from_arrays(offsets, pa.array(values.reshape(-1)))

    def _flush(self) -> None:
        if not self._buffered:
            return
        table = pa.Table.from_batches(self._buffer, schema=self.schema)
        # one call, one row group: its size is the buffer's, whatever pyarrow's default
        self._writer.write_table(table, row_group_size=table.num_rows)
        self.row_groups += 1
        self._buffer, self._buffered = [], 0

    # -- ending ---------------------------------------------------------------------------
    def close(self) -> Path:
        """Write what is buffered, finish the file and publish it as `path` (atomic rename)."""
        if self.state == "closed":
            return self.path
        if self.state == "aborted":
            raise RuntimeError(f"{self.path}: the trace writer was aborted")
        try:
            self._flush()
            self._writer.close()
            self._writer = None
            with open(self._tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(self._tmp, self.path)
            self._tmp = None
            self.state = "closed"
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        """Drop everything: the temporary file is removed, `path` is left as it was."""
        if self.state == "closed":
            return  # published already: abort() after close() must not delete the result
        self.state = "aborted"
        writer, self._writer = self._writer, None
        self._buffer, self._buffered = [], 0
        if writer is not None:
            try:
                writer.close()
            except Exception:  # a broken file is removed below anyway
                pass
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None

    def __enter__(self) -> TokenTraceWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
