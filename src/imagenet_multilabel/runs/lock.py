"""One run per folder: a run (evaluate, train, a job of a sweep) holds its folder while it
writes there, so that a second run started into the same folder cannot mix its results
with the first's.

The hold is a file ``.run.lock`` in the run folder, created atomically (``O_EXCL``) and
naming its holder: pid, host, the process's start time (so that a pid reused by another
process is not taken for the holder) and, under SLURM, the job id. A second run is
refused in one line naming the holder (:func:`hold`), or, as a job of a sweep, waits for
it (``wait=True``: an identical sweep started twice runs each job once). A lock whose
holder is gone (killed: no ``finally`` ran) is taken over with a line: on this host the
pid is checked; on another host only SLURM can tell (the holder's job no longer in
``squeue``, or the holder being an earlier run of this very SLURM job, requeued), else
the line says which file to remove.

A process holds a folder once, however many times it asks (``hold`` is re-entrant), and
:func:`release_all` drops every hold it has (before ``os._exit``, which runs no
``finally``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from imagenet_multilabel.core.errors import UserError
from imagenet_multilabel.core.processes import alive, start_time

log = logging.getLogger(__name__)

LOCK_FILE = ".run.lock"
_held: dict[Path, int] = {}  # lock file -> how many holds of this process


def _me() -> dict[str, Any]:
    me: dict[str, Any] = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "process_started": start_time(os.getpid()),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if os.environ.get("SLURM_JOB_ID"):
        me["slurm_job"] = os.environ["SLURM_JOB_ID"]
    return me


def describe(holder: dict[str, Any]) -> str:
    """``pid 123 on host h (started 2026-01-01 12:00:00)``."""
    text = f"pid {holder.get('pid')} on host {holder.get('host')}"
    if holder.get("slurm_job"):
        text += f", SLURM job {holder['slurm_job']}"
    return f"{text}, started {holder.get('started')}"


def _slurm_job_gone(job: str) -> bool | None:
    """Whether SLURM job ``job`` has ended (None where squeue cannot tell)."""
    if os.environ.get("SLURM_JOB_ID") == job:  # this job, requeued: its earlier run is gone
        return True
    try:
        out = subprocess.run(
            ["squeue", "-h", "-j", job, "-o", "%T"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return True if "Invalid job id" in out.stderr else None
    return out.stdout.strip() in ("", "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT")


def holder_state(holder: dict[str, Any]) -> str:
    """``"mine"``, ``"alive"``, ``"gone"`` or ``"unknown"`` (on another host, where
    SLURM cannot tell)."""
    try:
        pid = int(holder.get("pid"))
    except (TypeError, ValueError):
        return "gone"  # a damaged lock file names nobody
    if holder.get("host") == socket.gethostname():
        if pid == os.getpid():
            return "mine"
        return "alive" if alive(pid, holder.get("process_started")) else "gone"
    job = holder.get("slurm_job")
    gone = _slurm_job_gone(str(job)) if job else None
    if gone is None:
        return "unknown"
    return "gone" if gone else "alive"


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _create(path: Path) -> bool:
    """Create the lock file naming this process; False where it exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        json.dump(_me(), f)
    return True


def acquire(
    folder: str | Path,
    *,
    what: str = "run",
    wait: bool = False,
    poll: float = 2.0,
    on_wait: Callable[[dict[str, Any]], None] | None = None,
) -> Path:
    """Hold ``folder`` (created where missing) for this process; returns the lock file.

    Held by a live process: a :class:`UserError` naming it, or with ``wait`` a wait until
    it is released (``on_wait(holder)`` once, when the wait begins). Held by a process
    that is gone: taken over, with a line."""
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return folder / LOCK_FILE  # unwritable: the task reports it in its own words
    path = (folder / LOCK_FILE).resolve()
    if path in _held:
        _held[path] += 1
        return path
    waited = False
    while not _create(path):
        holder = _read(path)
        if not holder and time.time() - _mtime(path) < 5:
            time.sleep(0.2)  # being written by its holder right now
            continue
        state = holder_state(holder) if holder else "gone"
        if state == "mine":
            break  # an earlier hold of this process not counted (e.g. after a fork)
        if state == "gone":
            log.warning(
                "%s: taking over the lock of a run that is gone (%s)",
                folder,
                describe(holder) if holder else "a damaged lock file",
            )
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            continue
        if wait and state == "alive":
            if not waited and on_wait is not None:
                on_wait(holder)
            waited = True
            time.sleep(poll)
            continue
        if state == "unknown":
            raise UserError(
                f"{folder} is held by another {what}: {describe(holder)}, on another host, "
                f"where this one cannot tell whether it still runs; if it does not, remove "
                f"{path}, else choose another folder (hydra.run.dir=...)"
            )
        raise UserError(
            f"{folder} is held by another {what} still writing there: {describe(holder)}; "
            "wait for it to end or choose another folder (hydra.run.dir=...)"
        )
    _held[path] = _held.get(path, 0) + 1
    return path


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def release(path: Path) -> None:
    """Drop one hold of ``path``; the lock file goes with the last."""
    count = _held.get(path, 0) - 1
    if count > 0:
        _held[path] = count
        return
    _held.pop(path, None)
    if _read(path).get("pid") == os.getpid():
        with contextlib.suppress(OSError):
            path.unlink()


def release_all() -> None:
    """Drop every hold of this process (before ``os._exit``)."""
    for path in list(_held):
        _held[path] = 1
        release(path)


@contextlib.contextmanager
def hold(folder: str | Path | None, **kwargs: Any) -> Iterator[None]:
    """Hold ``folder`` while the block runs (:func:`acquire`); None holds nothing."""
    if folder is None:
        yield
        return
    path = acquire(folder, **kwargs)
    try:
        yield
    finally:
        if path in _held:
            release(path)
