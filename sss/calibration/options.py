"""The `calibration.` settings of job=calibrate: checks (before any model loads) and the
deterministic calibration directory.

    <output_root>/calibration/<model>/<data>__<engine>__n<limit>__<hash>/
        config.yaml manifest.json traces.parquet grid.parquet calibration.json
        grid_heatmap.png power_law.png DONE

`<hash>` fingerprints what changes the numbers: the model settings (not the batch size or the
evaluation engine), the calibration settings (not the batch size) and the data file's content.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .data import SOURCES, CalibrationDataError, file_sha256, load_examples
from .tracing import TRACE_ENGINES

# settings that do not change the traced numbers
NOT_RESULT = {"model": ("batch_size", "engine"), "calibration": ("batch_size",)}


def _bad(key: str, value: Any, allowed: str) -> ValueError:
    from sss.schema.common import bad

    return bad(f"calibration.{key}", value, allowed)


def check_options(options: dict[str, Any]) -> None:
    """The calibration settings that name this package's data sources and trace engines, and the
    data file itself (read once: a few MB at most). Types and numeric ranges are the schema's
    (sss.schema.CalibrationSchema)."""
    import importlib.util

    if options.get("data") not in SOURCES:
        raise _bad("data", options.get("data"), f"one of {sorted(SOURCES)}")
    engine = options.get("engine")
    if engine not in TRACE_ENGINES:
        raise _bad("engine", engine, f"one of {TRACE_ENGINES}")
    needs = {
        "vllm": ("vllm", "GPU: pip install 'sss[vllm]'; CPU: bash scripts/setup-venv.sh dev"),
        "torchtune": ("torchtune", "pip install 'sss[torchtune]'"),
    }.get(engine)
    if needs and importlib.util.find_spec(needs[0]) is None:
        raise _bad("engine", engine, f"an installed engine: {needs[0]} is not installed ({needs[1]})")

    files = options.get("data_files")
    if options["data"] == "arith":
        if files is not None:
            raise _bad("data_files", files, "null for calibration.data=arith (sss generates it)")
        return
    if files is None:
        if options["data"] == "jsonl":
            raise _bad(
                "data_files",
                files,
                "a JSONL file with prompt/answer fields (calibration.data=jsonl reads no hub dataset)",
            )
        return
    if not isinstance(files, str) or not Path(files).expanduser().is_file():
        raise _bad("data_files", files, "an existing JSONL file")
    try:
        load_examples(options)
    except CalibrationDataError as exc:
        from sss.config import ConfigError

        raise ConfigError(str(exc)) from exc


def data_label(options: dict[str, Any]) -> str:
    if options["data"] == "jsonl":
        return "jsonl-" + Path(options["data_files"]).stem
    if options["data"] == "arith":
        from sss.evaluation.tasks.arith.generate import GENERATOR_VERSION

        return f"arith-v{GENERATOR_VERSION}"
    return options["data"]


def calibration_dir(config: dict[str, Any]) -> Path:
    from sss.runs.layout import _digest, _safe

    options, model = config["calibration"], config["model"]
    identity = {
        "model": {k: v for k, v in model.items() if k not in NOT_RESULT["model"]},
        "calibration": {k: v for k, v in options.items() if k not in NOT_RESULT["calibration"]},
        "data_sha256": file_sha256(Path(options["data_files"]).expanduser()) if options.get("data_files") else None,
    }
    limit = options.get("limit")
    leaf = f"{data_label(options)}__{options['engine']}__n{limit if limit else 'all'}__{_digest(identity)}"
    return Path(config["output_root"]).expanduser() / "calibration" / _safe(model["name"]) / _safe(leaf)
