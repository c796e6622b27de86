"""Per-token traces of generation: `tokens.parquet` in a run directory (logging=tokens).

`TokenTraceWriter` streams one row per generated token into Parquet row groups and publishes
the file atomically on close; `validate_logging` checks the `logging` config group. The schema
and its units: docs/traces.md.
"""

from .config import validate_logging
from .writer import TOKENS_FILE, TokenTraceWriter, trace_schema

__all__ = ["TOKENS_FILE", "TokenTraceWriter", "trace_schema", "validate_logging"]
