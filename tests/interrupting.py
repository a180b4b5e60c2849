"""A Lightning callback that sends this process a signal during validation, as a scheduler
pre-empting a job (SIGTERM) or Ctrl-C (SIGINT) would (used by tests/core/test_interrupts.py
through the config)."""

from __future__ import annotations

import os
import signal as signal_module

import lightning as L


class SignalAt(L.Callback):
    """``signal`` to this process (rank ``rank`` only) after validation batch ``batch``."""

    def __init__(self, batch: int = 1, rank: int = 0, signal: str = "SIGTERM") -> None:
        self.batch, self.rank, self.signum = batch, rank, getattr(signal_module, signal)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, *_) -> None:
        if batch_idx == self.batch and trainer.global_rank == self.rank:
            os.kill(os.getpid(), self.signum)


class KillAt(L.Callback):
    """SIGKILL to this process (``kill -9``: no handler, no clean-up) at a moment of fitting
    once ``step`` optimizer steps are done: ``train`` (after a training batch, mid-epoch),
    ``save`` (inside a checkpoint save, before its file is written) or ``validation``
    (after the first validation batch)."""

    def __init__(self, moment: str = "train", step: int = 1) -> None:
        if moment not in ("train", "save", "validation"):
            raise ValueError(f"moment {moment!r}: train, save or validation")
        self.moment, self.step = moment, step

    def _kill(self, trainer, moment: str) -> None:
        if moment == self.moment and trainer.global_step >= self.step and trainer.state.fn == "fit":
            os.kill(os.getpid(), signal_module.SIGKILL)

    def on_train_batch_end(self, trainer, *_) -> None:
        self._kill(trainer, "train")

    def on_save_checkpoint(self, trainer, *_) -> None:
        self._kill(trainer, "save")

    def on_validation_batch_end(self, trainer, *_) -> None:
        self._kill(trainer, "validation")
