"""Entry-point glue: run a task under Hydra and turn UserErrors into one-line messages."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from omegaconf import DictConfig

from . import distributed  # also registers the resolvers conf/hydra/ uses
from .errors import Interrupted, UserError, find_user_error, one_line

log = logging.getLogger("imagenet_multilabel")
# conf/hydra/launcher/submitit_*.yaml extend the plugin's schemas of the same name, which
# Hydra 1.3 (pinned <1.4) supports but announces on every run
warnings.filterwarnings("ignore", message=".*validated against ConfigStore schema with the same")


def run_task(
    task: Callable[[DictConfig], Mapping[str, float]] | str,
    cfg: DictConfig,
    *,
    trainer: bool = False,
    check: Callable[[DictConfig], None] | None = None,
) -> Any:
    """Call ``task(cfg)``; a UserError (also one re-raised from a DataLoader worker) ends
    the process with ``error: <one line>`` and exit code 2, and nothing else. Under DDP
    every rank ends so; the line is printed once, by rank 0.

    ``trainer``: the task runs a Lightning Trainer, whose DDP ranks > 0 are then started
    as this Hydra job (:func:`distributed.hydra_job`). Returns the task's metrics, or the
    one named by ``cfg.optimized_metric`` when set (what Hydra's sweepers optimise).

    ``task`` may be ``"module:function"``: it is imported only after ``check(cfg)`` has
    passed, so that a config error is reported before torch and the rest are imported.
    """
    try:
        with interrupts_raise():
            if check is not None:
                check(cfg)
            if isinstance(task, str):
                task = import_task(task)
            if trainer:
                with distributed.hydra_job(task, cfg):
                    metrics = task(cfg)
            else:
                metrics = task(cfg)
    except Exception as e:
        user_error = find_user_error(e)
        if user_error is None:
            raise
        code = Interrupted.exit_code if isinstance(user_error, Interrupted) else 2
        if not distributed.is_global_zero() and isinstance(
            user_error, (Interrupted, distributed.RankFailed)
        ):
            raise SystemExit(code) from None  # rank 0 prints it
        if isinstance(user_error, distributed.RankFailed) and not user_error.report:
            raise SystemExit(2) from None
        _fail(one_line(user_error), code)
    except SystemExit as e:
        if type(e).__name__ != "SIGTERMException":  # Lightning's, with exit code 0
            raise
        _fail(Interrupted.message(signal.SIGTERM), Interrupted.exit_code)
    return optimized_value(metrics, cfg.get("optimized_metric"))


def import_task(ref: str) -> Callable[[DictConfig], Mapping[str, float]]:
    """``"package.module:function"`` -> the function."""
    import importlib

    module, _, name = ref.partition(":")
    target: Any = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    return target


@contextlib.contextmanager
def interrupts_raise() -> Iterator[None]:
    """SIGTERM raises :class:`Interrupted` in the main thread while a task runs, so that it
    ends like any error: one line, a non-zero exit code, no results (by default Python dies
    without a word, and Lightning's own handler ends validation with exit code 0)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Interrupted(Interrupted.message(signum))

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def optimized_value(metrics: Mapping[str, float], name: str | None) -> Any:
    """``metrics[name]`` (a ``<dataset>/<metric>`` key) when ``name`` is set, else ``metrics``."""
    from .preflight import check_optimized_metric

    if not name:
        return metrics
    try:
        check_optimized_metric(metrics, name)
    except UserError as e:
        _fail(one_line(e))
    return metrics[name]


def _fail(message: str, code: int = 2) -> None:
    log.error(message)
    print(f"error: {message}", file=sys.stderr, flush=True)
    if code == Interrupted.exit_code:
        # stop now: the interpreter's teardown can abort in a native thread that the
        # signal interrupted (seen with DataLoader workers killed alongside); results are
        # written atomically, so nothing is left half-done
        logging.shutdown()
        sys.stdout.flush()
        os._exit(code)
    raise SystemExit(code)
