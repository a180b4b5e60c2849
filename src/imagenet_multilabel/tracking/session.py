"""The W&B runs of this process, from start to end: the one place that starts, feeds and
finishes them (the composer, the tasks, the sweep jobs and ``run_task`` call these).

- :func:`start_tracking`: the run's loggers receive the resolved config first;
- :func:`log_finished_run`: once a run's results are on disk, loggers that describe a
  finished run (W&B: tables and figures, :mod:`~imagenet_multilabel.tracking.logger`) read
  it from its folder; then the W&B runs end;
- :func:`finish_wandb`: end the loggers' W&B runs (exit code 1 for a failed run);
- :func:`close_open_run`: end a W&B run still open after an error, whoever opened it.

Nothing heavy is imported here (``run_task`` imports this module before the config check).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def start_tracking(loggers: list, cfg: Any) -> None:
    """Loggers that record a config (W&B: :class:`~imagenet_multilabel.tracking.logger.
    WandbEvalLogger`) get the resolved ``cfg`` first."""
    for logger in loggers:
        if hasattr(logger, "log_config"):
            logger.log_config(cfg)


def log_finished_run(loggers: list, run_dir: str | Path) -> None:
    """After a run's results are on disk: loggers that describe a finished run (W&B:
    tables and figures, tracking/logger.py) read it from its folder; then W&B runs end."""
    for logger in loggers:
        if hasattr(logger, "log_run"):
            logger.log_run(run_dir)
    finish_wandb(loggers)


def finish_wandb(loggers: list, failed: bool = False) -> None:
    """Close W&B runs, with exit code 1 when the run failed (a multirun's next job must
    start a new one)."""
    # Lightning imports torch: tracking is also imported by light commands
    from lightning.pytorch.loggers import WandbLogger

    for logger in loggers:
        if hasattr(logger, "finish"):
            logger.finish(failed=failed)
        elif isinstance(logger, WandbLogger):
            logger.experiment.finish(exit_code=1 if failed else 0)


def close_open_run(failed: bool) -> None:
    """Close a W&B run left open (an error before the task finished it): the next job of
    a multirun must start its own. Nothing to do where wandb was never imported."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish(exit_code=1 if failed else 0)
