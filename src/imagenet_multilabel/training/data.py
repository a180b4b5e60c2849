"""Training data: subsets of photo sets, composites of new tile combinations, cached
features, and a training loader whose order is a function of (seed, epoch) and whose
position is saved in Lightning checkpoints (resuming reads the same batches).

Randomness of a training item (its augmentation) is seeded by (seed, epoch, index), not by
the process that loads it: the batches do not depend on the number of workers or ranks, or
on where a run was interrupted.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from imagenet_multilabel.core.errors import DataError
from imagenet_multilabel.data.datasets.composites import CompositeDataset
from imagenet_multilabel.data.datasets.folders import ImageDataset
from imagenet_multilabel.data.loading.module import EvalDataModule


def subset(dataset: ImageDataset, indices: Sequence[int], name: str, transform=None):
    """The photos ``indices`` of ``dataset`` as a dataset of their own (same root, files and
    labels; item ``i`` is photo ``indices[i]``)."""
    return ImageDataset(
        dataset.root,
        [dataset.files[i] for i in indices],
        [dataset.targets[i] for i in indices],
        transform,
        name,
    )


class NewComposites(CompositeDataset):
    """Composites of ``base`` whose tile sets (as unordered sets) are not in ``exclude``:
    new combinations of the same photos."""

    def __init__(self, base: ImageDataset, exclude: np.ndarray, **kwargs: Any) -> None:
        self._exclude = {frozenset(row.tolist()) for row in exclude}
        super().__init__(base, **kwargs)

    def _draw_tiles(self, targets: np.ndarray, count: int, n_tiles: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        out = np.empty((count, n_tiles), dtype=np.int64)
        for i in range(count):
            for _ in range(10_000):
                pick = rng.choice(len(targets), n_tiles, replace=False)
                key = frozenset(pick.tolist())
                if len(set(targets[pick].tolist())) == n_tiles and key not in self._exclude:
                    out[i] = pick
                    break
            else:
                raise DataError(
                    f"could not draw {count} new combinations of the training photos' tiles "
                    f"(only {i} found): lower composites.eval_images"
                )
        return out


class FeatureDataset(Dataset):
    """Cached pooled features of a dataset's images, with their labels."""

    def __init__(self, features: torch.Tensor, targets: torch.Tensor) -> None:
        if features.shape[0] != targets.shape[0]:
            raise AssertionError("features and targets differ in length")
        self.features, self.targets = features, targets

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"features": self.features[index], "target": self.targets[index], "index": index}


class SeededItems(Dataset):
    """Items addressed by ``(epoch, index)``; with ``seeded``, the item's random draws
    (torch's and Python's generators: timm's augmentations use both) come from
    ``(seed, epoch, index)`` alone, whichever process loads it."""

    def __init__(
        self, dataset: Dataset, valid: torch.Tensor | None, seed: int, seeded: bool
    ) -> None:
        self.dataset, self.valid, self.seed, self.seeded = dataset, valid, seed, seeded

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        epoch, index = key
        item = self._seeded_item(epoch, index) if self.seeded else self.dataset[index]
        if self.valid is not None:
            item["valid"] = self.valid[index]
        return item

    def _seeded_item(self, epoch: int, index: int) -> dict[str, Any]:
        seed = int(np.random.SeedSequence([self.seed, epoch, index]).generate_state(1)[0])
        state = random.getstate()
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                random.seed(seed)
                return self.dataset[index]
        finally:
            random.setstate(state)


class EpochBatchSampler(Sampler[list[tuple[int, int]]]):
    """One rank's batches of ``(epoch, index)``: a permutation seeded by (seed, epoch),
    padded (with its first indices) to a multiple of the number of ranks and dealt out
    round-robin; ``skip`` batches at the start are left out (a resumed epoch)."""

    def __init__(
        self,
        size: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
    ) -> None:
        if size < 1 or batch_size < 1:
            raise ValueError("size and batch_size must be positive")
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last
        self.epoch, self.skip = 0, 0
        self.given_epoch: int | None = None
        # Lightning calls ``set_epoch`` on ``loader.batch_sampler.sampler`` at the start of
        # every epoch, with its own epoch count: here, this sampler itself
        self.sampler = self

    def set_epoch(self, epoch: int) -> None:
        """The epoch Lightning is starting (its count, restored from a checkpoint also where
        it does not restore the loader's state: a run saved at the end of an epoch)."""
        self.given_epoch = int(epoch)

    def per_rank(self) -> int:
        return math.ceil(self.size / self.world_size)

    def __len__(self) -> int:
        n = self.per_rank()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def order(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed(
            int(np.random.SeedSequence([self.seed, epoch]).generate_state(1)[0])
        )
        perm = torch.randperm(self.size, generator=g).tolist()
        total = self.per_rank() * self.world_size
        perm = (perm * math.ceil(total / self.size))[:total]
        return perm[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch, mine = self.epoch, self.order(self.epoch)
        for b in range(self.skip, len(self)):
            yield [(epoch, i) for i in mine[b * self.batch_size : (b + 1) * self.batch_size]]


class ResumableLoader(DataLoader):
    """The training loader: epoch ``e`` is the sampler's order for ``e``, and its position
    (epoch, batches handed out) is its ``state_dict``, which Lightning stores in every
    checkpoint and gives back on resume (a mid-epoch resume then skips the batches done)."""

    def __init__(self, dataset: SeededItems, batch_sampler: EpochBatchSampler, **kwargs) -> None:
        super().__init__(dataset, batch_sampler=batch_sampler, **kwargs)
        self._next_epoch, self._skip = 0, 0
        self._epoch, self._handed_out = 0, 0

    def __iter__(self) -> Iterator[Any]:
        sampler: EpochBatchSampler = self.batch_sampler  # type: ignore[assignment]
        # the epoch Lightning starts wins over this loader's own count: resuming a checkpoint
        # saved at the end of an epoch, Lightning gives the next epoch but not the loader's
        # state (a fresh loader would start over at epoch 0)
        epoch = self._next_epoch if sampler.given_epoch is None else sampler.given_epoch
        skip = self._skip if epoch == self._next_epoch else 0
        sampler.given_epoch = None
        self._epoch, self._handed_out = epoch, skip
        sampler.epoch, sampler.skip = epoch, skip
        self._next_epoch, self._skip = epoch + 1, 0
        for batch in super().__iter__():
            self._handed_out += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self._epoch, "batches": self._handed_out}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        epoch, done = int(state["epoch"]), int(state["batches"])
        if done >= len(self):
            epoch, done = epoch + 1, 0
        self._next_epoch, self._skip = epoch, done


class FitDataModule(EvalDataModule):
    """The evaluation data module's validation loaders, plus the training loader."""

    def __init__(
        self,
        train: Dataset,
        train_valid: torch.Tensor | None,
        val_sets: Mapping[str, Dataset],
        val_valid: Mapping[str, torch.Tensor | None],
        *,
        train_batch_size: int,
        batch_size: int,
        seed: int,
        seeded_items: bool,
        num_workers: int = 0,
        pin_memory: bool = False,
        prefetch_factor: int | None = None,
        drop_last: bool = False,
    ) -> None:
        super().__init__(val_sets, val_valid, batch_size, num_workers, pin_memory, prefetch_factor)
        self.train_items = SeededItems(train, train_valid, seed, seeded_items)
        self.train_batch_size, self.seed, self.drop_last = train_batch_size, seed, drop_last
        self._loader: ResumableLoader | None = None
        self._position: Mapping[str, int] | None = None

    # The training loader's position is also kept as the data module's state: Lightning
    # restores a data module before anything builds the loader, and hands it the position
    # when it builds it. Lightning's own restore of a loader's state is skipped when the
    # loader was built before the loops' state was read (the schedule's length,
    # ``trainer.estimated_stepping_batches``, builds it): a resumed epoch then started over.
    def state_dict(self) -> dict[str, Any]:
        return {} if self._loader is None else {"train_loader": self._loader.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._position = state.get("train_loader")

    def train_dataloader(self) -> ResumableLoader:
        rank, world = self._world()
        sampler = EpochBatchSampler(
            len(self.train_items), self.train_batch_size, self.seed, rank, world, self.drop_last
        )
        kwargs: dict[str, Any] = {}
        if self.num_workers > 0 and self.prefetch_factor is not None:
            kwargs["prefetch_factor"] = self.prefetch_factor
        loader = ResumableLoader(
            self.train_items,
            sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            generator=torch.Generator().manual_seed(self.seed),  # no draw from the global RNG
            **kwargs,
        )
        if self._position is not None:
            loader.load_state_dict(self._position)
            self._position = None
        self._loader = loader
        return loader
