"""Whether a process is still there: the run folder's lock (runs/lock.py) and the decode
cache's unfinished fills (data/loading/cache.py) tell a live holder from a dead one by its
pid and, where /proc exists, its start time (a reused pid is another process)."""

from __future__ import annotations

import os
from pathlib import Path


def start_time(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot, /proc/<pid>/stat), or
    None where there is no such process (or no /proc)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def alive(pid: int, started: str | None = None) -> bool:
    """Process ``pid`` runs, and is the one that started at ``started`` where given."""
    now = start_time(pid)
    if now is None:
        if Path("/proc/self/stat").is_file():
            return False
        try:  # no /proc (macOS): the pid alone
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return started is None or now == started
