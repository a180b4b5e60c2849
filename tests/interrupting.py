"""A Lightning callback that sends this process a signal during validation, as a scheduler
pre-empting a job (SIGTERM) or Ctrl-C (SIGINT) would (used by tests/test_interrupts.py
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
