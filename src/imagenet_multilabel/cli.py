"""Entry-point glue: run a task under Hydra and turn UserErrors into one-line messages."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig

from .errors import UserError, one_line

log = logging.getLogger("imagenet_multilabel")


def run_task(task: Callable[[DictConfig], Any], cfg: DictConfig) -> Any:
    """Call ``task(cfg)``; a UserError (also one re-raised from a DataLoader worker) ends
    the process with ``error: <one line>`` and exit code 2, and nothing else."""
    try:
        return task(cfg)
    except UserError as e:
        _fail(one_line(e))
    except Exception as e:
        # DataLoader workers re-raise our errors with the worker traceback as message
        if "Original Traceback" in str(e) and "imagenet_multilabel.errors" in str(e):
            _fail(one_line(e))
        raise


def _fail(message: str) -> None:
    log.error(message)
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)
