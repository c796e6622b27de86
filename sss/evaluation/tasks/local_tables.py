"""Reading a task's local data file as a table, to check it before any model loads.

Adapters use this to name a missing field or category in a clear config error
instead of letting lm-eval fail later, and to turn JSON lines into Parquet where a
task relies on the Parquet loader. Files are small (AIME: 30 rows; MMLU-Pro: 12k).
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa


def read_table(path: Path, columns: list[str] | None = None) -> pa.Table:
    """A .parquet, .csv, .jsonl or .json (JSON lines or one list of records) file as a table."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path, columns=columns)
    if suffix == ".csv":
        import pyarrow.csv as pcsv

        table = pcsv.read_csv(path)
    elif suffix in (".jsonl", ".json"):
        text = path.read_text(encoding="utf-8")
        rows = (
            json.loads(text)
            if text.lstrip().startswith("[")
            else [json.loads(line) for line in text.splitlines() if line.strip()]
        )
        table = pa.Table.from_pylist(rows)
    else:
        raise ValueError(f"{path}: expected a .parquet, .csv, .jsonl or .json file")
    return table.select(columns) if columns is not None else table


def column_names(path: Path) -> list[str]:
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    return list(read_table(path).column_names)
