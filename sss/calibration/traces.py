"""traces.parquet: one row per teacher-forced answer token.

Columns: doc_id, position (index within the answer), token_id (gold), rank (1-based, full
vocabulary, ties counted against the gold token), prob (gold), p_max, top_ids and top_probs
(fixed-size lists of K, most probable first).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .stats import StepColumns

COLUMNS = ("doc_id", "position", "token_id", "rank", "prob", "p_max", "top_ids", "top_probs")


def to_table(steps: StepColumns) -> pa.Table:
    k = steps.top_probs.shape[1]
    fixed = lambda values, kind: pa.FixedSizeListArray.from_arrays(  # noqa: E731
        pa.array(np.ascontiguousarray(values).reshape(-1), type=kind), k
    )
    return pa.table(
        {
            "doc_id": pa.array(steps.doc_id, pa.int64()),
            "position": pa.array(steps.position, pa.int32()),
            "token_id": pa.array(steps.token_id, pa.int32()),
            "rank": pa.array(steps.rank, pa.int32()),
            "prob": pa.array(steps.prob, pa.float32()),
            "p_max": pa.array(steps.p_max, pa.float32()),
            "top_ids": fixed(steps.top_ids, pa.int32()),
            "top_probs": fixed(steps.top_probs, pa.float32()),
        }
    )


def write_traces(steps: StepColumns, path: Path) -> None:
    """Written to a temporary name and renamed, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    # no dictionary encoding (probabilities rarely repeat) and zstd: about 2.5x faster to read
    # back than parquet's defaults, for a file of about the same size
    pq.write_table(to_table(steps), tmp, row_group_size=1 << 20, compression="zstd", use_dictionary=False)
    tmp.replace(path)


def top_matrix(column: pa.ChunkedArray | pa.Array, k: int) -> np.ndarray:
    """A fixed-size-list column as an [n, k] numpy array (no copy for one chunk)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return column.flatten().to_numpy(zero_copy_only=False).reshape(-1, k)


def steps_from_table(table: pa.Table) -> StepColumns:
    k = table.schema.field("top_probs").type.list_size
    return StepColumns(
        doc_id=table["doc_id"].to_numpy(),
        position=table["position"].to_numpy(),
        token_id=table["token_id"].to_numpy(),
        rank=table["rank"].to_numpy(),
        prob=table["prob"].to_numpy(),
        p_max=table["p_max"].to_numpy(),
        top_ids=top_matrix(table["top_ids"], k),
        top_probs=top_matrix(table["top_probs"], k),
    )
