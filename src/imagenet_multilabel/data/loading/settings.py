"""Loader settings (batch size, decoding workers, pinned memory) resolved for the device:
what evaluate and train both read from the config (``null``: auto)."""

from __future__ import annotations

from dataclasses import dataclass

import lightning as L
from omegaconf import DictConfig

from imagenet_multilabel.core.runtime import available_cores


@dataclass(frozen=True)
class LoaderSettings:
    """Batch size, decoding workers and pinned memory as resolved for the device."""

    batch_size: int
    num_workers: int
    pin_memory: bool
    prefetch_factor: int | None = None


# measured on a 2-core CPU machine (see conf/evaluate.yaml); a GPU wants large batches fed
# by several decoding processes
CPU_BATCH, GPU_BATCH, GPU_WORKERS_MAX = 16, 256, 8


def loader_settings(cfg: DictConfig, trainer: L.Trainer) -> LoaderSettings:
    """``batch_size``, ``num_workers`` and ``pin_memory`` of ``cfg``, where null (auto)
    resolved for the trainer's device: CPU 16 images, 1 worker, no pinning; GPU 256
    images, the cores per device (at most 8) as workers, pinned memory."""
    gpu = trainer.strategy.root_device.type == "cuda"
    per_device = max(1, available_cores() // max(1, trainer.num_devices))
    batch = cfg.get("batch_size")
    workers = cfg.get("num_workers")
    pin = cfg.get("pin_memory")
    return LoaderSettings(
        batch_size=int(batch if batch is not None else GPU_BATCH if gpu else CPU_BATCH),
        num_workers=int(
            workers if workers is not None else min(GPU_WORKERS_MAX, per_device) if gpu else 1
        ),
        pin_memory=bool(pin if pin is not None else gpu),
        prefetch_factor=cfg.get("prefetch_factor"),
    )
