"""A Hydra callback that makes the jobs a launcher runs at once visible, with no timing
luck (tests/sweeps/test_local_launcher.py): each job marks its start and end in a folder,
and waits at its start until a second job runs beside it (or it is the last job to start),
then watches a moment longer. It writes the most jobs it saw running at once.

A job's own work is short beside the start of its process (imports), so the times of its
output files say nothing about which jobs ran together; the wait does: under a launcher that
runs two at a time, the first job of each pair waits for the second, and no job ever sees
three."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class JobGate(Callback):
    """``+hydra.callbacks.gate._target_=tests.sweeps.job_gate.JobGate
    +hydra.callbacks.gate.folder=<folder> +hydra.callbacks.gate.jobs=<jobs in the sweep>``."""

    def __init__(self, folder: str, jobs: int, wait_s: float = 120.0, watch_s: float = 1.0):
        self.folder, self.jobs, self.wait_s, self.watch_s = Path(folder), jobs, wait_s, watch_s

    def _running(self) -> tuple[int, int]:
        started = len(list(self.folder.glob("*.start")))
        return started, started - len(list(self.folder.glob("*.end")))

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        num = config.hydra.job.num
        (self.folder / f"{num}.start").write_text(repr(time.time()))
        most, waited = 1, time.monotonic() + self.wait_s
        while time.monotonic() < waited:
            started, running = self._running()
            most = max(most, running)
            if running >= 2 or started == self.jobs:
                break
            time.sleep(0.05)
        watched = time.monotonic() + self.watch_s
        while time.monotonic() < watched:
            most = max(most, self._running()[1])
            time.sleep(0.05)
        (self.folder / f"{num}.most").write_text(str(most))

    def on_job_end(self, config: DictConfig, **kwargs: Any) -> None:
        (self.folder / f"{config.hydra.job.num}.end").write_text(repr(time.time()))
