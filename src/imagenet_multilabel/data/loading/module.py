"""The evaluation DataModule: one validation DataLoader per dataset, whose batches (those
of one process) are dealt whole to the ranks, without padding or repeats: every image is
scored exactly once, in the batch it has on one process."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from imagenet_multilabel.data.datasets.folders import ImageDataset


class ShardBatches(Sampler[list[int]]):
    """The batches of one process (``0..size-1`` in order, ``batch_size`` at a time, the
    last one partial), batch ``b`` to rank ``b mod world_size``: every image is computed
    in the same batch, at the same place in it, whatever the number of ranks (kernels may
    round differently for another batch, see docs/distributed.md). Nothing is padded or
    repeated (unlike ``DistributedSampler``); ranks differ by at most one batch, and their
    union is the dataset."""

    def __init__(self, size: int, batch_size: int, rank: int = 0, world_size: int = 1) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world of size {world_size}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.size, self.batch_size = size, batch_size
        self.rank, self.world_size = rank, world_size

    def _starts(self) -> range:
        step = self.batch_size * self.world_size
        return range(self.rank * self.batch_size, self.size, step)

    def __iter__(self) -> Iterator[list[int]]:
        for start in self._starts():
            yield list(range(start, min(start + self.batch_size, self.size)))

    def __len__(self) -> int:
        return len(self._starts())


class StopOnError(DataLoader):
    """A DataLoader whose iteration ends at the first error instead of raising it; the
    error is kept in ``failure`` (shared by the loaders of a DataModule, which then yield
    nothing). Under DDP the rank can then reach the point where all ranks agree on
    failure, instead of leaving the others waiting in a collective."""

    def __init__(self, *args: Any, failure: dict[str, BaseException], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.failure = failure

    def __len__(self) -> int:
        """At least 1 for a dataset with images: a rank may have no batch of it (fewer
        batches than ranks), and Lightning skips the whole validation epoch of a rank whose
        loaders all have length 0, its end too, where every rank must gather. Such a loader
        then yields nothing, as after an error."""
        n = super().__len__()
        return max(n, 1) if len(self.dataset) else n

    def __iter__(self) -> Iterator[Any]:
        if self.failure:
            return iter(())
        return self._guarded(super().__iter__())

    def _guarded(self, batches: Iterator[Any]) -> Iterator[Any]:
        try:
            yield from batches
        except Exception as e:
            self.failure["error"] = e


class WithValidLabels(Dataset):
    """Adds the multi-hot ``valid`` row of each image to a dataset's items."""

    def __init__(self, dataset: ImageDataset, valid: torch.Tensor) -> None:
        if valid.shape[0] != len(dataset):
            raise AssertionError("label matrix and dataset differ in length")
        self.dataset, self.valid = dataset, valid

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.dataset[index]
        item["valid"] = self.valid[index]
        return item


class EvalDataModule(L.LightningDataModule):
    """Datasets by name (the order of the validation dataloaders) and their label matrices."""

    def __init__(
        self,
        datasets: Mapping[str, ImageDataset],
        valid: Mapping[str, torch.Tensor | None] | None = None,
        batch_size: int = 64,
        num_workers: int = 2,
        pin_memory: bool = False,
        prefetch_factor: int | None = None,
        decode_cache: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.datasets = dict(datasets)
        self.decode_cache = decode_cache  # per dataset: what the decode cache did (run.json)
        self.valid = {name: (valid or {}).get(name) for name in self.datasets}
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.prefetch_factor = prefetch_factor
        self._failure: dict[str, BaseException] = {}

    @property
    def failure(self) -> BaseException | None:
        """The error that ended this rank's iteration over the data, if any."""
        return self._failure.get("error")

    @property
    def names(self) -> list[str]:
        return list(self.datasets)

    def _world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0, 1
        return trainer.global_rank, trainer.world_size

    def loader(self, name: str) -> DataLoader:
        dataset: Dataset = self.datasets[name]
        if self.valid[name] is not None:
            dataset = WithValidLabels(self.datasets[name], self.valid[name])
        rank, world = self._world()
        # crops already in memory (the decode cache): workers would only copy them around
        workers = 0 if getattr(self.datasets[name], "in_memory", False) else self.num_workers
        kwargs: dict[str, Any] = {}
        if workers > 0 and self.prefetch_factor is not None:
            kwargs["prefetch_factor"] = self.prefetch_factor
        return StopOnError(
            dataset,
            failure=self._failure,
            batch_sampler=ShardBatches(len(dataset), self.batch_size, rank, world),
            num_workers=workers,
            pin_memory=self.pin_memory,
            **kwargs,
        )

    def val_dataloader(self) -> list[DataLoader]:
        return [self.loader(name) for name in self.names]
