"""Entry-point glue: run a task under Hydra and turn UserErrors into one-line messages."""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig

from . import distributed  # also registers the resolvers conf/hydra/ uses
from .errors import UserError, one_line

log = logging.getLogger("imagenet_multilabel")
# conf/hydra/launcher/submitit_*.yaml extend the plugin's schemas of the same name, which
# Hydra 1.3 (pinned <1.4) supports but announces on every run
warnings.filterwarnings("ignore", message=".*validated against ConfigStore schema with the same")


def run_task(task: Callable[[DictConfig], Any], cfg: DictConfig) -> Any:
    """Call ``task(cfg)``; a UserError (also one re-raised from a DataLoader worker) ends
    the process with ``error: <one line>`` and exit code 2, and nothing else. Under DDP
    every rank ends so; the line is printed once, by rank 0."""
    try:
        with distributed.hydra_job(task, cfg):
            return task(cfg)
    except Exception as e:
        user_error = find_user_error(e)
        if user_error is None:
            raise
        if isinstance(user_error, distributed.RankFailed) and not user_error.report:
            raise SystemExit(2) from None  # rank 0 prints it
        _fail(one_line(user_error))


def find_user_error(exc: BaseException) -> BaseException | None:
    """The UserError behind ``exc``: itself, its cause (Hydra's instantiate wraps errors of
    the objects it builds) or one re-raised from a DataLoader worker (whose message is the
    worker's traceback)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, UserError):
            return exc
        if "Original Traceback" in str(exc) and "imagenet_multilabel.errors." in str(exc):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _fail(message: str) -> None:
    log.error(message)
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)
