"""Short fine-tuning runs shared by the train tests: a few steps of the tiny model on demo
photos."""

from __future__ import annotations

from pathlib import Path

import torch

from imagenet_multilabel.tasks.train import train

FAST = (
    "model=test_tiny",
    "batch_size=8",
    "train_batch_size=4",
    "composites.train_images=12",
    "composites.eval_images=6",
    "split.heldout_classes=6",
    "logger=none",
)


def fit(compose_cfg, photos: Path, *overrides: str) -> tuple[dict, Path]:
    """``train`` of a config composed with :data:`FAST` on ``photos``: (metrics, run folder)."""
    cfg = compose_cfg(*FAST, f"data.root={photos}", *overrides, config_name="train")
    return train(cfg), Path(cfg.paths.output_dir)


def checkpoint_state(path: Path) -> dict:
    """A Lightning checkpoint's contents."""
    return torch.load(path, map_location="cpu", weights_only=True)
