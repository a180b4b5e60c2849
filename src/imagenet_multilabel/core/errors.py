"""The one error type users see: a one-line message that says what is wrong and what to do.

Entry points catch :class:`UserError` and print ``error: <message>`` instead of a stack
trace. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import signal


class UserError(Exception):
    """Bad input or configuration; the message is one line and names the fix."""


class DataError(UserError):
    """A dataset, an image or a label file cannot be used as given."""


class ModelError(UserError):
    """A model name or its weights cannot be resolved."""


class SweepError(UserError):
    """A setting of the whole sweep is wrong (``optimized_metric`` names no metric of its
    runs): every job would fail alike, so it ends the sweep in one line instead of being
    recorded as one job's failure (which a sweeper such as Optuna cannot take)."""


class Interrupted(BaseException):
    """The process was told to stop (SIGTERM: a scheduler's pre-emption, or kill; SIGINT:
    Ctrl-C). Its exit code is the shell's for a process ended by the signal: 128 + its
    number (143, 130). Like KeyboardInterrupt it is not an Exception, so that no
    ``except Exception`` on the way (a logging call, an import guard, a sweep job that
    records its failure and lets the sweep go on) takes it for an error and carries on."""

    exit_code = 143  # SIGTERM's, where no signal is known

    def __init__(self, signum: int = 15, again: str = "run it again") -> None:
        super().__init__(self.message(signum, again))
        self.signum, self.exit_code = signum, 128 + signum

    @staticmethod
    def message(signum: int = 15, again: str = "run it again") -> str:
        """``again``: what to do (a task that can resume says how)."""

        return (
            f"interrupted by {signal.Signals(signum).name} before the run finished: it wrote "
            f"no metrics.json; {again}"
        )


def one_line(exc: BaseException) -> str:
    """The user-facing line of an error, also when it was re-raised by a DataLoader worker.

    PyTorch re-raises a worker's exception in the main process with the worker's whole
    traceback as its message; the original message is on the last line after the type.
    """
    text = str(exc).strip()
    if "Original Traceback" in text:
        last = text.splitlines()[-1]
        head, sep, rest = last.partition(": ")
        text = rest if sep and head.rsplit(".", 1)[-1].endswith("Error") else last
    return " ".join(text.split())


def find_user_error(exc: BaseException | None) -> BaseException | None:
    """The UserError (or :class:`Interrupted`) behind ``exc``: itself, its cause (Hydra's
    instantiate wraps errors of the objects it builds) or one re-raised from a DataLoader
    worker (whose message is the worker's traceback)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (UserError, Interrupted)):
            return exc
        if "Original Traceback" in str(exc) and "imagenet_multilabel.core.errors." in str(exc):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None
