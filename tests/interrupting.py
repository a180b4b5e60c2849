"""A Lightning callback that sends this process SIGTERM during validation, as a scheduler
pre-empting a job would (used by tests/test_interrupts.py through the config)."""

from __future__ import annotations

import os
import signal

import lightning as L


class SigtermAt(L.Callback):
    """SIGTERM to this process (rank ``rank`` only) after validation batch ``batch``."""

    def __init__(self, batch: int = 1, rank: int = 0) -> None:
        self.batch, self.rank = batch, rank

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, *_) -> None:
        if batch_idx == self.batch and trainer.global_rank == self.rank:
            os.kill(os.getpid(), signal.SIGTERM)
