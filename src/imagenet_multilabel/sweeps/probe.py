"""A Hydra callback that records what each job of a multirun cost its process: one JSON
line per job in ``<sweep dir>/jobs_resources.jsonl`` (job number and folder, wall seconds,
resident memory when the job started and ended, the process's peak, open file descriptors
and threads at its end, whether it failed, whether it was skipped: a resumed sweep's job
whose results were complete, which wrote neither metrics.json nor failed.json).
``benchmarks/zoo.py`` reads it to show that memory and per-job time stay flat over hundreds
of jobs in one process.

    python evaluate.py -m ... +hydra.callbacks.resources._target_=\\
        imagenet_multilabel.sweeps.probe.JobResources
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from imagenet_multilabel.runs.rundir import FAILED_FILE, METRICS_FILE

RESOURCES_FILE = "jobs_resources.jsonl"


def _resources() -> dict[str, Any]:
    # imported here: Hydra loads its callbacks at start-up, before the config check,
    # which must not wait for torch (core/runtime imports it)
    from imagenet_multilabel.core.runtime import process_resources

    return process_resources()


class JobResources(Callback):
    """``on_job_start`` / ``on_job_end``: a job's cost to the process it runs in."""

    def __init__(self) -> None:
        self._started: float | None = None
        self._clock: float = 0.0  # the wall clock at the start, against file times
        self._at_start: dict[str, Any] = {}

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._at_start = _resources()
        self._started = time.perf_counter()
        self._clock = time.time()

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        wall = time.perf_counter() - self._started if self._started is not None else None
        end = _resources()
        job_dir = Path(str(config.hydra.runtime.output_dir))
        line = {
            "job": int(config.hydra.job.get("num", -1)),
            "dir": job_dir.name,
            "pid": os.getpid(),
            "wall_s": round(wall, 3) if wall is not None else None,
            "rss_start_mb": self._at_start.get("rss_mb"),
            "rss_end_mb": end.get("rss_mb"),
            "peak_rss_mb": end.get("peak_rss_mb"),
            "open_fds": end.get("open_fds"),
            "threads": end.get("threads"),
            "failed": (job_dir / FAILED_FILE).is_file(),
            "skipped": not self._wrote_result(job_dir),
        }
        sweep = Path(str(config.hydra.sweep.dir))
        with open(sweep / RESOURCES_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")

    def _wrote_result(self, job_dir: Path) -> bool:
        """Whether the job wrote its metrics.json or failed.json since it started (a job of
        a resumed sweep whose results were complete writes neither)."""
        for name in (METRICS_FILE, FAILED_FILE):
            path = job_dir / name
            if path.is_file() and path.stat().st_mtime >= self._clock - 1:
                return True
        return False
