"""Per-token traces of generation: `tokens.parquet` in a run directory (logging=tokens).

`TokenTraceWriter` streams one row per generated token into Parquet row groups and publishes
the file atomically on close. The `logging` config group's keys are checked by
sss.schema.LoggingSchema. The table's schema and its units: docs/traces.md.
"""

from .writer import TOKENS_FILE, TokenTraceWriter, trace_schema

__all__ = ["TOKENS_FILE", "TokenTraceWriter", "trace_schema"]
