"""`job=evaluate`: one (task, model, sampler, seed) through lm-eval into a run directory."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import threading
import time
import traceback
from typing import Any

import yaml

from sss.config import RunSettings
from sss.runs.layout import RunDir, atomic_target, run_dir_for, sampler_name, write_atomic, write_json
from sss.runs.lock import RunLock
from sss.tracing import TOKENS_FILE, TokenTraceWriter
from sss.runs.manifest import Manifest
from sss.runs.redo import recover, staging, swap_in

log = logging.getLogger(__name__)

GENERATION_KEYS = ("num_fewshot", "repeats", "max_gen_toks", "stop", "chat_template")


def evaluate(settings: RunSettings) -> RunDir:
    config, spec = settings.config, settings.spec
    run = run_dir_for(config, spec)
    if run.is_done() and not config.get("force"):
        return _skip(run)
    # One process per run directory (sss.runs.lock); a second launch of this config is refused.
    with RunLock(run.path):
        recover(run)  # a force=true swap that a crash interrupted
        if run.is_done() and not config.get("force"):
            return _skip(run)  # finished by the process that held the lock before us
        # A finished run redone with force=true is computed beside it and swapped in only when
        # complete (sss.runs.redo); a partial run from an earlier attempt is redone in place.
        work = staging(run) if run.is_done() else run
        metrics = _run_into(settings, work, run)
        if work is not run:
            swap_in(run, work)
        print_results(metrics)
    return run


def _skip(run: RunDir) -> RunDir:
    print(f"skipped: {run.path} is DONE (force=true redoes it)")
    print_results(json.loads(run.metrics.read_text()))
    return run


def _run_into(settings: RunSettings, work: RunDir, run: RunDir) -> dict[str, Any]:
    config, spec = settings.config, settings.spec
    work.path.mkdir(parents=True, exist_ok=True)
    work.done.unlink(missing_ok=True)
    for leftover in work.path.rglob(".*.tmp"):  # temporary files of a write a crash cut short
        leftover.unlink(missing_ok=True)
    write_atomic(work.config, yaml.safe_dump(config, sort_keys=False))
    manifest = Manifest(
        {
            "task": config["task"]["name"],
            "model": config["model"]["name"],
            "sampler": sampler_name(spec),
            "sampler_params": spec.enabled(),
            "seed": settings.seed,
            "job": config["job"]["name"],
        }
    )
    # what shapes the generations besides the sampler, in one place (also in config.yaml)
    manifest.data["generation"] = {key: config["task"][key] for key in GENERATION_KEYS}
    manifest.data["engine"] = {k: v for k, v in config["engine"].items() if k != "_target_"}
    # --- calibration artifact (sampler.calibration): its path and content hash -------------
    from sss.calibration.for_samplers import manifest_record

    manifest.data["calibration"] = manifest_record(config["sampler"])
    # ---------------------------------------------------------------------------------------
    write_json(work.manifest, manifest.data)
    print(
        f"run directory: {run.path}"
        + (f" (redone beside it in {work.path.name}, swapped in when complete)" if work is not run else "")
    )
    try:
        with _terminate_as_exit():
            metrics = _evaluate(settings, work, manifest)
    except BaseException as exc:
        # An error in the run is "failed"; a stop from outside (Ctrl-C, or submitit exiting
        # after requeueing a preempted job) is "interrupted". Either way DONE is not written,
        # so a re-launch redoes the run.
        status = "failed" if isinstance(exc, Exception) else "interrupted"
        write_json(
            work.manifest,
            manifest.finish(status, error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()),
        )
        raise
    write_json(work.manifest, manifest.finish("done"))
    work.mark_done()
    return metrics


@contextlib.contextmanager
def _terminate_as_exit():
    """A plain `kill` (SIGTERM) ends the run through the handler above, so its manifest says
    "interrupted" instead of "running" forever. Only where SIGTERM has its default action:
    under submitit, whose own handlers manage preemption and requeue, nothing changes."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _evaluate(settings: RunSettings, run: RunDir, manifest: Manifest) -> dict[str, Any]:
    config, spec = settings.config, settings.spec
    task_cfg, model_cfg = config["task"], config["model"]

    t = time.perf_counter()
    from sss.models import resolve_model_path
    from sss.models.embedded import cache_root
    from sss.evaluation.tasks import TASKS, lm_eval_configs, write_task_yamls

    adapter = TASKS[task_cfg["name"]]
    task_files = write_task_yamls(run.path / "lm_eval_tasks", lm_eval_configs(task_cfg, cache_root()))
    engine_cfg = config["engine"]
    # the dummy engine has no weights: its model path is a label, never resolved or converted
    model_path = model_cfg["path"] if engine_cfg["name"] == "dummy" else resolve_model_path(model_cfg["path"])
    manifest.phase("prepare", time.perf_counter() - t)

    t = time.perf_counter()
    import lm_eval
    from hydra.utils import instantiate
    from lm_eval.tasks import TaskManager

    from sss.evaluation.lm import SamplerLM

    generator = instantiate(
        engine_cfg, path=model_path, dtype=model_cfg["dtype"], trust_remote_code=model_cfg["trust_remote_code"]
    )
    manifest.phase("load_model", time.perf_counter() - t)

    # logging=tokens: every generated token into tokens.parquet, streamed as generation goes and
    # published atomically on close (an error leaves no half-valid table; sss.tracing)
    logging_cfg = config.get("logging") or {}
    traces = contextlib.nullcontext()
    tokens_file = run.path / TOKENS_FILE
    tokens_file.unlink(missing_ok=True)  # an earlier attempt's table must not outlive a redo
    if logging_cfg.get("tokens"):
        traces = TokenTraceWriter(tokens_file, top_k=int(logging_cfg.get("top_k") or 0))

    t = time.perf_counter()
    with traces as writer:
        lm = SamplerLM(
            generator,
            sampler=spec,
            seed=settings.seed,
            trace_top_k=None if writer is None else writer.top_k,
            trace_sink=None if writer is None else writer.add,
        )
        results = lm_eval.simple_evaluate(
            # our task YAMLs load by path; indexing lm-eval's own thousands of tasks costs ~15 s
            model=lm,
            tasks=[str(path) for path in task_files],
            task_manager=TaskManager(include_defaults=False),
            limit=task_cfg["limit"],
            log_samples=True,
            apply_chat_template=task_cfg["chat_template"],
            random_seed=settings.seed,
            numpy_random_seed=settings.seed,
            torch_random_seed=settings.seed,
            fewshot_random_seed=settings.seed,
        )
    manifest.phase("evaluate", time.perf_counter() - t)

    from sss.evaluation.records import metrics_record, samples_table

    samples = samples_table(results["samples"], adapter, lm.records)
    with atomic_target(run.samples) as tmp:  # DONE never stands beside a half-written table
        samples.to_parquet(tmp, index=False)
    metrics = metrics_record(results, samples, config)
    write_json(run.metrics, metrics)
    return metrics


def print_results(metrics: dict[str, Any]) -> None:
    print()
    print(f"{'task':<10} {'model':<26} {'sampler':<30} {'metric':<16} {'value':>7}")
    for name, value in metrics["metrics"].items():
        print(f"{metrics['task']:<10} {metrics['model']:<26} {metrics['sampler']:<30} {name:<16} {value:>7.4f}")
    print(f"({metrics['n_docs']} documents x {metrics['repeats']} repeats)")
