"""Splits: seeded, class-stratified, disjoint; held-out classes never trained."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imagenet_multilabel.core.errors import DataError
from imagenet_multilabel.training.splits import make_split


def test_split_is_stratified_disjoint_and_seeded() -> None:
    targets = np.repeat(np.arange(10), 10)  # 10 classes x 10 photos
    split = make_split(targets, heldout_fraction=0.3, heldout_classes=2, seed=1)
    parts = [set(split.train), set(split.heldout_seen), set(split.heldout_classes)]
    assert sum(map(len, parts)) == 100 and len(set.union(*parts)) == 100
    assert len(split.unseen_classes) == 2
    assert set(targets[split.heldout_classes]) == set(split.unseen_classes)
    for c in set(range(10)) - set(split.unseen_classes):
        assert (targets[split.heldout_seen] == c).sum() == 3
        assert (targets[split.train] == c).sum() == 7
    again = make_split(targets, heldout_fraction=0.3, heldout_classes=2, seed=1)
    assert np.array_equal(again.train, split.train)
    other = make_split(targets, heldout_fraction=0.3, heldout_classes=2, seed=2)
    assert not np.array_equal(other.train, split.train)


def test_a_photo_naming_a_held_out_class_is_never_trained() -> None:
    targets = np.repeat(np.arange(4), 5)
    valid = torch.zeros(20, 1000, dtype=torch.bool)
    valid[torch.arange(20), torch.from_numpy(targets)] = True
    split = make_split(targets, valid, heldout_fraction=0.0, heldout_classes=1, seed=0)
    (unseen,) = split.unseen_classes
    seen_photo = int(np.flatnonzero(targets != unseen)[0])
    valid[seen_photo, unseen] = True
    split = make_split(targets, valid, heldout_fraction=0.0, heldout_classes=1, seed=0)
    assert seen_photo in split.heldout_seen and seen_photo not in split.train


def test_one_photo_per_class_keeps_every_photo_of_a_trained_class() -> None:
    split = make_split(np.arange(10), heldout_fraction=0.5, heldout_classes=3, seed=0)
    assert len(split.train) == 7 and len(split.heldout_seen) == 0


@pytest.mark.parametrize(
    ("fraction", "classes", "message"),
    [(0.5, 0, "no held-out image"), (0.2, 10, "no class to train"), (1.0, 0, "must be in")],
)
def test_bad_splits(fraction: float, classes: int, message: str) -> None:
    with pytest.raises(DataError, match=message):
        make_split(np.arange(10), heldout_fraction=fraction, heldout_classes=classes)
