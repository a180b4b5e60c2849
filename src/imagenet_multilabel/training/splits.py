"""Train / held-out splits of a labelled photo set: seeded, class-stratified, disjoint.

``heldout_classes`` classes are kept out of training entirely (their photos, and any photo
whose label set names one of them, are never trained on), so that what fine-tuning does to
classes it never saw (forgetting) can be measured. Of every other class, about
``heldout_fraction`` of its photos are held out (rounded per class; a class keeps at least
one training photo, so a class with one photo is always trained).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from imagenet_multilabel.core.errors import DataError

PARTS = ("train", "heldout_seen", "heldout_classes")


@dataclass(frozen=True)
class Split:
    """Indices into the source dataset of each part, sorted, pairwise disjoint."""

    train: np.ndarray
    heldout_seen: np.ndarray
    heldout_classes: np.ndarray
    unseen_classes: tuple[int, ...]  # the classes kept out of training
    seed: int
    heldout_fraction: float

    def part(self, name: str) -> np.ndarray:
        return getattr(self, name)

    def settings(self) -> dict[str, Any]:
        """The settings, the held-out classes and the size of every part (run.json)."""
        return {
            "seed": self.seed,
            "heldout_fraction": self.heldout_fraction,
            "heldout_classes": list(self.unseen_classes),
            "counts": {p: len(self.part(p)) for p in PARTS},
        }

    def record(self, files: Sequence[str]) -> dict[str, Any]:
        """What split.json holds: :meth:`settings` and every part's files."""
        return {
            **self.settings(),
            "files": {p: [files[i] for i in self.part(p)] for p in PARTS},
        }


def make_split(
    targets: Sequence[int],
    valid: torch.Tensor | None = None,
    heldout_fraction: float = 0.2,
    heldout_classes: int = 0,
    seed: int = 0,
) -> Split:
    """Split photos (their original labels ``targets``, optional label sets ``valid``).

    Raises DataError when no photo is left for training or none is held out."""
    if not 0.0 <= heldout_fraction < 1.0:
        raise DataError(f"split.heldout_fraction={heldout_fraction} must be in [0, 1)")
    targets = np.asarray(targets, dtype=np.int64)
    classes = np.unique(targets)
    if not 0 <= heldout_classes < len(classes):
        raise DataError(
            f"split.heldout_classes={heldout_classes} leaves no class to train: the data has "
            f"{len(classes)} classes, hold out fewer"
        )
    rng = np.random.default_rng(seed)
    unseen = np.sort(rng.choice(classes, heldout_classes, replace=False))
    in_unseen = np.isin(targets, unseen)
    # a photo whose label set names an unseen class would train it: never trained
    touches = (
        valid[:, torch.from_numpy(unseen)].any(dim=1).numpy()
        if valid is not None and len(unseen)
        else np.zeros(len(targets), dtype=bool)
    )
    train, seen = [], [np.flatnonzero(~in_unseen & touches)]
    for c in classes:
        if c in unseen:
            continue
        photos = rng.permutation(np.flatnonzero((targets == c) & ~touches))
        held = min(int(np.floor(len(photos) * heldout_fraction + 0.5)), max(len(photos) - 1, 0))
        seen.append(photos[:held])
        train.append(photos[held:])
    split = Split(
        train=np.sort(np.concatenate(train)) if train else np.zeros(0, np.int64),
        heldout_seen=np.sort(np.concatenate(seen)),
        heldout_classes=np.flatnonzero(in_unseen),
        unseen_classes=tuple(int(c) for c in unseen),
        seed=seed,
        heldout_fraction=heldout_fraction,
    )
    if len(split.train) == 0:
        raise DataError("the split leaves no training image: lower split.heldout_fraction")
    if len(split.heldout_seen) + len(split.heldout_classes) == 0:
        raise DataError(
            "the split leaves no held-out image (every class has one photo or "
            "split.heldout_fraction is 0): set split.heldout_classes=K or raise "
            "split.heldout_fraction"
        )
    return split
