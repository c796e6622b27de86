"""One process at a time per run directory: a lock file beside it, naming its holder.

    <parent>/.<leaf>.lock   {"host": ..., "pid": ..., "started": ...}

The lock is created by an atomic hard link, so of two launches of one config exactly one gets it; the
other is refused with the holder's host and pid. A lock whose process is gone (same host, pid
not alive: a `kill -9`, a crash, a node reboot) is taken over and the takeover is said. A lock
from another host cannot be checked from here and is respected; its message says how to
remove it. The lock sits beside the run directory, not in it, so `force=true` can swap the
directory while holding it.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

from .layout import read_json_dict
from .manifest import now


class RunBusyError(RuntimeError):
    """Another live process holds the run directory's lock."""


def lock_path(run_path: Path) -> Path:
    return run_path.parent / f".{run_path.name}.lock"


def pid_alive(pid: Any) -> bool:
    """Whether a process with this id exists on this host (signal 0 checks without sending)."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def read_holder(path: Path) -> dict[str, Any] | None:
    return read_json_dict(path)


def scheduler_job() -> str | None:
    """This process's SLURM job (array task included): the same across a requeue."""
    job = os.environ.get("SLURM_JOB_ID")
    task = os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{job}_{task}" if job and task else job


def holder_alive(holder: dict[str, Any] | None) -> bool | None:
    """True/False for a holder on this host; None where it cannot be known (another host)."""
    if not holder:
        return False
    if holder.get("host") != socket.gethostname():
        # a requeued SLURM job (possibly on another node) is the same job as the holder: the
        # holder's incarnation is over, or SLURM would not have started this one
        mine = scheduler_job()
        return False if mine is not None and holder.get("slurm_job") == mine else None
    return pid_alive(holder.get("pid"))


def _create(record: Path, lock: Path) -> None:
    """Make `lock` hold `record`'s content, failing with FileExistsError if it exists."""
    try:
        os.link(record, lock)
    except FileExistsError:
        raise
    except OSError:  # a filesystem without hard links: exclusive create, then the content
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        with os.fdopen(fd, "w") as fh:
            fh.write(record.read_text())


class RunLock:
    """`with RunLock(run.path):` holds the run's lock for the block (RunBusyError if taken)."""

    def __init__(self, run_path: Path):
        self.run_path = Path(run_path)
        self.path = lock_path(self.run_path)
        self.took_over: dict[str, Any] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {"host": socket.gethostname(), "pid": os.getpid(), "started": now(), "slurm_job": scheduler_job()}
        # The holder's record is written to a file of its own first and then hard-linked as the
        # lock: link() fails if the lock exists, so a lock file is never seen half-written.
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(me))
        try:
            for _ in range(5):  # another process may take over a stale lock meanwhile
                try:
                    _create(tmp, self.path)
                    return
                except FileExistsError:
                    holder = read_holder(self.path)
                    alive = holder_alive(holder)
                    if alive is False:
                        self._take_over(holder)
                        continue
                    raise RunBusyError(self._busy_message(holder, alive)) from None
        finally:
            tmp.unlink(missing_ok=True)
        raise RunBusyError(f"{self.run_path}: could not take its lock {self.path} (contended)")

    def _take_over(self, holder: dict[str, Any] | None) -> None:
        # Renaming the stale file away first: of two processes taking over, one rename succeeds
        # and the other finds no file, so they cannot both end up holding a fresh lock.
        aside = self.path.with_name(f"{self.path.name}.stale-{os.getpid()}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        aside.unlink(missing_ok=True)
        self.took_over = holder or {}
        who = f"pid {holder.get('pid')} on {holder.get('host')}" if holder else "an unreadable holder"
        print(f"taking over the stale lock of {self.run_path}: {who} is gone", file=sys.stderr)

    def _busy_message(self, holder: dict[str, Any] | None, alive: bool | None) -> str:
        who = f"pid {holder.get('pid')} on host {holder.get('host')} (since {holder.get('started')})"
        if alive is None:
            return (
                f"{self.run_path} is locked by {who}, another host: wait for it, or if that "
                f"process is gone, delete {self.path}"
            )
        return (
            f"{self.run_path} is being computed by {who}: wait for it to finish "
            f"(a re-launch then skips the run) or stop that process"
        )

    def release(self) -> None:
        holder = read_holder(self.path)
        if holder and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()
