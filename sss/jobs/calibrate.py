"""`job=calibrate`: traces of a frozen model on reference answers -> grid -> fit -> artifact.

Writes the calibration directory of `sss.calibration.options.calibration_dir` (skipped when
DONE unless force=true; a partial one is redone): config.yaml, manifest.json, traces.parquet,
grid.parquet, calibration.json, grid_heatmap.png, power_law.png, then DONE.
"""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path
from typing import Any

import yaml

from sss.config import RunSettings
from sss.runs.layout import write_atomic, write_json
from sss.runs.manifest import Manifest


def calibrate(settings: RunSettings) -> Path:
    from sss.calibration.options import calibration_dir

    config = settings.config
    folder = calibration_dir(config)
    done = folder / "DONE"
    if done.is_file() and not config.get("force"):
        print(f"skipped: {folder} is DONE (force=true redoes it)")
        print_summary(json.loads((folder / "calibration.json").read_text()), folder)
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    done.unlink(missing_ok=True)
    write_atomic(folder / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    options = config["calibration"]
    manifest = Manifest(
        {
            "job": "calibrate",
            "model": config["model"]["name"],
            "data": options["data"],
            "engine": options["engine"],
            "limit": options["limit"],
            "seed": settings.seed,
        }
    )
    write_json(folder / "manifest.json", manifest.data)
    print(f"calibration directory: {folder}")
    try:
        artifact = _calibrate(config, folder, manifest)
    except BaseException as exc:
        status = "failed" if isinstance(exc, Exception) else "interrupted"
        write_json(
            folder / "manifest.json",
            manifest.finish(status, error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()),
        )
        raise
    write_json(folder / "manifest.json", manifest.finish("done"))
    write_atomic(done, "")
    print_summary(artifact, folder)
    return folder


def _calibrate(config: dict[str, Any], folder: Path, manifest: Manifest) -> dict[str, Any]:
    from sss.calibration import figures
    from sss.calibration.artifact import summarize, write_artifact
    from sss.calibration.data import encode, file_sha256, load_examples
    from sss.calibration.grid import build_grid
    from sss.calibration.traces import write_traces
    from sss.calibration.tracing import load_engine, trace
    from sss.models import resolve_model_path

    options, model_cfg = config["calibration"], config["model"]
    engine = options["engine"]

    t = time.perf_counter()
    from transformers import AutoTokenizer

    path = resolve_model_path(model_cfg["path"])
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=model_cfg.get("trust_remote_code", False))
    examples = load_examples(options)
    sequences = encode(examples, tokenizer, options["chat_template"], options["max_length"])
    manifest.phase("data", time.perf_counter() - t)

    t = time.perf_counter()
    # the engine group's settings (engine.device for HF, the vLLM keys for engine=vllm) apply
    # to the calibration engine of the same kind
    settings = {k: v for k, v in config["engine"].items() if k not in ("_target_", "name")}
    loaded = load_engine(engine, path, {**settings, **model_cfg}, options)
    manifest.phase("load_model", time.perf_counter() - t)

    t = time.perf_counter()
    steps = trace(engine, loaded, sequences, options)
    del loaded
    traced = time.perf_counter() - t
    manifest.phase("trace", traced)
    manifest.data["tokens_per_s"] = round(len(steps) / traced, 1) if traced > 0 else None
    write_traces(steps, folder / "traces.parquet")

    t = time.perf_counter()
    grid = build_grid(folder / "traces.parquet", options["bins"], options["top_k"])
    grid.to_parquet(folder / "grid.parquet", index=False)
    summary = summarize(grid, options["thresholds"], options["min_support"])
    manifest.phase("grid_fit", time.perf_counter() - t)

    files = options.get("data_files")
    artifact = {
        "sss_version": _version(),
        "created": manifest.data["started"],
        "model": {
            "name": model_cfg["name"],
            "path": model_cfg["path"],
            "resolved_path": path,
            "dtype": model_cfg["dtype"],
        },
        "engine": engine,
        "data": {
            "source": options["data"],
            "data_files": files,
            "sha256": file_sha256(Path(files).expanduser()) if files else None,
            "limit": options["limit"],
            "documents": len(sequences),
            "tokens": len(steps),
        },
        "chat_template": options["chat_template"],
        **summary,
    }
    write_artifact(folder, artifact)

    t = time.perf_counter()
    title = f"{model_cfg['name']} on {options['data']} ({len(steps)} tokens, {engine})"
    figures.grid_heatmap(grid, folder / "grid_heatmap.png", title)
    figures.power_law_scatter(grid, summary["fit"], folder / "power_law.png", title)
    manifest.phase("figures", time.perf_counter() - t)
    return artifact


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("sss")
    except metadata.PackageNotFoundError:
        return "unknown"


def print_summary(artifact: dict[str, Any], folder: Path) -> None:
    data, fit = artifact["data"], artifact.get("fit")
    print(
        f"traced {data['tokens']} answer tokens of {data['documents']} documents "
        f"({artifact['model']['name']}, engine {artifact['engine']})"
    )
    if fit:
        print(
            f"power law: log10 c = {fit['a']:.4f} + {fit['b']:.4f} log10 p  "
            f"(R2 {fit['r2']:.3f}, RMSE {fit['rmse']:.3f}, {fit['n_cells']} cells)"
        )
    else:
        print("power law: not fitted (fewer than two grid cells with c_hat > 0)")
    for threshold, ks in artifact["k_lists"].items():
        print(f"k list for c = {threshold:<5} (bin 1 first): {ks}")
    print(
        f"sample with it: python launch.py sampler=calibrated_topk sampler.calibration={folder} "
        "sampler.calibration_threshold=0.05"
    )
