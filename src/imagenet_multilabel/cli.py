"""Entry-point glue: run a task under Hydra and turn UserErrors into one-line messages."""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from omegaconf import DictConfig

from . import distributed  # also registers the resolvers conf/hydra/ uses
from .errors import find_user_error, one_line

log = logging.getLogger("imagenet_multilabel")
# conf/hydra/launcher/submitit_*.yaml extend the plugin's schemas of the same name, which
# Hydra 1.3 (pinned <1.4) supports but announces on every run
warnings.filterwarnings("ignore", message=".*validated against ConfigStore schema with the same")


def run_task(
    task: Callable[[DictConfig], Mapping[str, float]], cfg: DictConfig, *, trainer: bool = False
) -> Any:
    """Call ``task(cfg)``; a UserError (also one re-raised from a DataLoader worker) ends
    the process with ``error: <one line>`` and exit code 2, and nothing else. Under DDP
    every rank ends so; the line is printed once, by rank 0.

    ``trainer``: the task runs a Lightning Trainer, whose DDP ranks > 0 are then started
    as this Hydra job (:func:`distributed.hydra_job`). Returns the task's metrics, or the
    one named by ``cfg.optimized_metric`` when set (what Hydra's sweepers optimise).
    """
    try:
        if trainer:
            with distributed.hydra_job(task, cfg):
                metrics = task(cfg)
        else:
            metrics = task(cfg)
    except Exception as e:
        user_error = find_user_error(e)
        if user_error is None:
            raise
        if isinstance(user_error, distributed.RankFailed) and not user_error.report:
            raise SystemExit(2) from None  # rank 0 prints it
        _fail(one_line(user_error))
    return optimized_value(metrics, cfg.get("optimized_metric"))


def optimized_value(metrics: Mapping[str, float], name: str | None) -> Any:
    """``metrics[name]`` (a ``<dataset>/<metric>`` key) when ``name`` is set, else ``metrics``."""
    if not name:
        return metrics
    if name not in metrics:
        example = next(iter(metrics), "-")
        _fail(f"optimized_metric={name!r} is not among this run's metrics (e.g. {example!r})")
    return metrics[name]


def _fail(message: str) -> None:
    log.error(message)
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)
