"""The training loader: order from (seed, epoch), position saved and restored, items
seeded by (seed, epoch, index) whoever loads them."""

from __future__ import annotations

import random

import pytest
import torch
from torch.utils.data import Dataset

from imagenet_multilabel.training.data import EpochBatchSampler, ResumableLoader, SeededItems


class Draws(Dataset):
    """Each item is a random draw (as an augmentation makes)."""

    def __len__(self) -> int:
        return 10

    def __getitem__(self, index: int) -> dict:
        return {"x": torch.rand(1).item() + random.random(), "index": index}


def loader(seed: int = 0, batch: int = 3) -> ResumableLoader:
    items = SeededItems(Draws(), None, seed, seeded=True)
    return ResumableLoader(items, EpochBatchSampler(10, batch, seed), num_workers=0)


def epochs(dl: ResumableLoader, n: int) -> list[list[float]]:
    return [[x for b in dl for x in b["x"].tolist()] for _ in range(n)]


def test_epochs_differ_and_repeat_with_the_seed() -> None:
    a, b = epochs(loader(), 2), epochs(loader(), 2)
    assert a == b and a[0] != a[1]
    assert epochs(loader(seed=1), 1)[0] != a[0]


@pytest.mark.parametrize("stop_after", [1, 4])  # batches 0..3 per epoch: mid-epoch, epoch end
def test_a_resumed_loader_hands_out_what_the_uninterrupted_one_did(stop_after: int) -> None:
    dl = loader()
    whole = [b["x"].tolist() for _ in range(3) for b in dl]
    first = loader()
    seen, it = [], iter(first)
    for _ in range(stop_after):
        seen.append(next(it)["x"].tolist())
    state = first.state_dict()
    torch.rand(5)  # global random draws in between change nothing
    resumed = loader()
    resumed.load_state_dict(state)
    while len(seen) < len(whole):
        seen += [b["x"].tolist() for b in resumed]
    assert seen == whole


def test_ranks_split_an_epoch_without_overlap() -> None:
    shares = [EpochBatchSampler(10, 2, 0, rank=r, world_size=3) for r in range(3)]
    indices = [[i for batch in s for _, i in batch] for s in shares]
    assert all(len(x) == 4 for x in indices)  # padded to 12
    assert set().union(*map(set, indices)) == set(range(10))


def test_the_epoch_lightning_starts_wins_over_the_loaders_own_count() -> None:
    """A checkpoint saved at the end of an epoch: Lightning restores its epoch count (and
    calls set_epoch) but not the loader's state; the fresh loader must hand out that epoch,
    not epoch 0 again."""
    whole = [[b["x"].tolist() for b in dl] for dl in [loader()] for _ in range(3)]
    fresh = loader()
    fresh.batch_sampler.sampler.set_epoch(2)  # what Lightning calls (_set_sampler_epoch)
    assert [b["x"].tolist() for b in fresh] == whole[2]
    # a loaded mid-epoch position of the same epoch is kept
    first = loader()
    it = iter(first)
    next(it)
    state = first.state_dict()
    resumed = loader()
    resumed.load_state_dict(state)
    resumed.batch_sampler.sampler.set_epoch(0)
    assert [b["x"].tolist() for b in resumed] == whole[0][1:]
