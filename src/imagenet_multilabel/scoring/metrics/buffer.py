"""PredictionBuffer: the per-dataset store of logits that every metric is computed from.

A torchmetrics ``Metric`` with ``cat`` states, so it gathers correctly across DDP ranks
(uneven shards included). ``compute()`` returns the predictions in dataset order, after
checking that every image was seen exactly once: metrics are then computed on exactly
the tensors a single process would have, and give exactly its numbers. The batches are
joined in one copy by :func:`cat_rows` (none when the dataset size is known and they come in
order), and sorted only when out of order; ``compute()`` returns them without a further copy
(torchmetrics would clone them, and squeeze a one-image dataset's to 0-d tensors). Shapes
are those of any dataset size: (N, C) logits, (N,) targets, also for N = 1.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities.distributed import gather_all_tensors

from imagenet_multilabel.core.runtime import huge_pages, one_torch_thread


@dataclass
class Predictions:
    """A dataset's predictions in dataset order."""

    logits: Tensor  # (N, C) float32
    target: Tensor  # (N,) int64
    valid: Tensor | None  # (N, C) bool, or None without a label set
    # (N,) the dataset indices the predictions were gathered for, sorted (the buffer's)
    index: Tensor | None = None

    def __len__(self) -> int:
        return int(self.target.shape[0])


class PredictionBuffer(Metric):
    full_state_update = False
    is_differentiable = False

    def __init__(
        self,
        dataset_size: int,
        with_valid: bool = False,
        num_classes: int | None = None,
        valid_classes: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.dataset_size = dataset_size
        self.with_valid = with_valid
        self.num_classes = num_classes
        # the columns of the valid labels: the classes (num_classes unless the logits
        # carry more columns, such as pooled features before them)
        self.valid_classes = valid_classes if valid_classes is not None else num_classes
        self.add_state("index", default=[], dist_reduce_fx="cat")
        self.add_state("logits", default=[], dist_reduce_fx="cat")
        self.add_state("target", default=[], dist_reduce_fx="cat")
        if with_valid:
            # uint8, not bool: gloo cannot all-gather bool tensors
            self.add_state("valid", default=[], dist_reduce_fx="cat")
        # the rows this process will record, allocated at the first update when the dataset
        # size is known (:meth:`_record`); the rows written to it so far
        self._arena: dict[str, Tensor] | None = None
        self._arena_rows = 0

    def _wrap_compute(self, compute: Callable) -> Callable:
        # torchmetrics wraps compute (sync, cache; also after unpickling), squeezes
        # one-element tensors and clones every tensor it returns: a second copy of all the
        # predictions (250 MB for ImageNet val), made to guard against a caller writing into
        # them. The predictions pass its wrapper in a box it does not open: they come as
        # compute() made them, in their shapes; nothing of the buffer writes into rows it
        # has returned (reset() and further updates write into new ones)
        wrapped = super()._wrap_compute(lambda *args, **kwargs: _Box(compute(*args, **kwargs)))

        @functools.wraps(compute)
        def unboxed(*args, **kwargs) -> Predictions:
            return wrapped(*args, **kwargs).content

        return unboxed

    def _apply(self, fn: Callable, exclude_state: Sequence[str] = ()) -> Any:
        # a device move cannot reach the boxed predictions of the last compute(): the next
        # one computes them anew, from the moved states
        self._computed = None
        return super()._apply(fn, exclude_state=exclude_state)

    @one_torch_thread()  # small ops and copies: one torch thread, as the scorer
    def update(
        self, index: Tensor, logits: Tensor, target: Tensor, valid: Tensor | None = None
    ) -> None:
        batch = {"index": index.long(), "logits": logits.float(), "target": target.long()}
        if self.with_valid:
            if valid is None:
                raise ValueError("this buffer stores valid labels but none were given")
            batch["valid"] = valid
        self._record(batch)

    def _record(self, batch: dict[str, Tensor]) -> None:
        """Appends a batch to the states. When the dataset size is known, the batches are
        written one after another into tensors of the rows this process will record (its
        share of the dataset, allocated at the first batch), and the states hold views of
        them: in order, :meth:`sorted_states` then joins them without a copy. Valid labels
        are stored as bool there (viewed as uint8 in the state, for gloo)."""
        n = int(batch["index"].shape[0])
        arena = self._arena_for(batch, n)
        for key, value in batch.items():
            if arena is None:
                stored = value.to(torch.uint8) if key == "valid" else value
            else:
                stored = arena[key][self._arena_rows : self._arena_rows + n]
                stored.copy_(value)
                stored = stored.view(torch.uint8) if key == "valid" else stored
            getattr(self, key).append(stored)
        if arena is not None:
            self._arena_rows += n

    def _arena_for(self, batch: dict[str, Tensor], n: int) -> dict[str, Tensor] | None:
        """The arena that ``batch`` (``n`` rows) fits in, allocated if there is none yet;
        None when the dataset size is unknown or the batch does not fit (more rows than a
        rank's share, another device or shape): it is then stored as it is."""
        if self._arena is None:
            if not self.dataset_size or self._arena_rows:
                return None
            rows = -(-self.dataset_size // self._rank_and_world()[1])
            self._arena = {
                key: huge_pages(
                    torch.empty(
                        (rows, *value.shape[1:]),
                        dtype=torch.bool if key == "valid" else value.dtype,
                        device=value.device,
                    )
                )
                for key, value in batch.items()
            }
        for key, value in batch.items():
            arena = self._arena[key]
            if (
                self._arena_rows + n > arena.shape[0]
                or arena.shape[1:] != value.shape[1:]
                or arena.device != value.device
            ):
                return None
        return self._arena

    def _arena_states(self) -> list[Tensor] | None:
        """The states (index, logits, target, valid) as views of the arena's first rows,
        when they are exactly the batches written to it, in order; else None."""
        if self._arena is None or not self._arena_rows:
            return None
        joined = []
        for key in self._defaults:
            arena, state = self._arena[key], getattr(self, key)
            if not isinstance(state, list):  # synced: the gathered tensors
                return None
            row, step = 0, arena.stride(0) * arena.element_size()
            for t in state:
                if (
                    t.device != arena.device
                    or t.shape[1:] != arena.shape[1:]
                    or not t.is_contiguous()
                    or t.data_ptr() != arena.data_ptr() + row * step
                ):
                    return None
                row += int(t.shape[0])
            if row != self._arena_rows:
                return None
            joined.append(arena[:row])
        return joined

    def _rank_and_world(self) -> tuple[int, int]:
        dist = torch.distributed
        if not (dist.is_available() and dist.is_initialized()):
            return 0, 1
        group = self.process_group
        return dist.get_rank(group), dist.get_world_size(group)

    def reset(self) -> None:
        super().reset()
        self._arena, self._arena_rows = None, 0

    def __getstate__(self) -> dict[str, Any]:
        # pickle writes the whole storage of each view: states that are views of the arena
        # are pickled as tensors of their own rows, and the copy has no arena, nor the last
        # compute()'s predictions (views of it too; they are computed anew)
        state = super().__getstate__()
        for key in self._defaults:
            if isinstance(state[key], list) and self._arena is not None:
                state[key] = [t.clone() for t in state[key]]
        return {**state, "_arena": None, "_arena_rows": 0, "_computed": None}

    def _sync_dist(self, dist_sync_fn: Callable = gather_all_tensors, process_group=None) -> None:
        # A rank whose shard of this dataset is empty (more ranks than images) contributes
        # empty states of the right shape and dtype, so that the gather lines up.
        if not self.index and self.num_classes is not None:
            c = self.num_classes
            self.index.append(torch.zeros(0, dtype=torch.long, device=self.device))
            self.logits.append(torch.zeros(0, c, dtype=torch.float32, device=self.device))
            self.target.append(torch.zeros(0, dtype=torch.long, device=self.device))
            if self.with_valid:
                v = self.valid_classes
                self.valid.append(torch.zeros(0, v, dtype=torch.uint8, device=self.device))
        super()._sync_dist(dist_sync_fn, process_group=process_group)

    def sorted_states(self) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """(index, logits, target, valid) of every prediction recorded (gathered, after a
        sync), in index order; a repeated index keeps its copies in recorded order (the
        lowest rank's first). The preallocated rows as they lie when the batches fill them
        in order (no copy); else the batches joined by :func:`cat_rows` (one copy)."""
        # before a sync the states are lists of batches; after one, tensors
        if isinstance(self.index, list) and not self.index:
            raise RuntimeError("no predictions were recorded: call update() first")
        joined = self._arena_states()
        if joined is None:
            states = [self.index, self.logits, self.target]
            dtypes: list[torch.dtype | None] = [None, None, None]
            if self.with_valid:  # stored as uint8 (for gloo), scored as bool
                states.append(self.valid)
                dtypes.append(torch.bool)
            joined = cat_rows(states, dtypes)
        index, logits, target, *rest = joined
        valid = rest[0] if rest else None
        if index.numel() < 2 or bool((index[1:] >= index[:-1]).all()):
            return index, logits, target, valid  # in order already: no sort, no copy
        with one_torch_thread():
            order = torch.argsort(index, stable=True)
            valid = None if valid is None else valid[order]
            return index[order], logits[order], target[order], valid

    def compute(self) -> Predictions:
        index, logits, target, valid = self.sorted_states()
        expected = torch.arange(self.dataset_size, device=index.device)
        if index.numel() != self.dataset_size or not torch.equal(index, expected):
            seen = torch.unique(index).numel()
            raise RuntimeError(
                f"scored {index.numel()} predictions for {seen} distinct images of a dataset "
                f"of {self.dataset_size}: every image must be scored exactly once"
            )
        return Predictions(logits=logits, target=target, valid=valid, index=index)


class _Box:
    """What torchmetrics does not look into (:meth:`PredictionBuffer._wrap_compute`)."""

    def __init__(self, content: Any) -> None:
        self.content = content


@one_torch_thread()  # see the docstring
def cat_rows(states: list[list[Tensor] | Tensor], dtypes: list[torch.dtype | None]) -> list[Tensor]:
    """Each state's batches (a list of tensors, or one tensor after a DDP sync) as one
    tensor of their rows, in ``dtypes`` (None: the batches' own), as ``torch.cat`` then
    ``.to(dtype)`` would give them.

    On the CPU, each output is allocated once and every batch is copied (and converted) into
    its rows, on one torch thread: on the busy 2-core machine, ``torch.cat`` of 100 batches
    of 50,000 x 1000 logits and ``.bool()`` of their valid labels took 0.8-1.5 CPU-s on two
    OpenMP threads (each copy waiting for a taken core), 0.20 on one, this 0.17. A single
    batch in its dtype is returned as it is."""
    outputs: list[Tensor] = []
    for state, dtype in zip(states, dtypes, strict=True):
        batches = [state] if isinstance(state, Tensor) else list(state)
        if not batches:
            raise ValueError("no batches to concatenate")
        batches = [b.reshape(1) if b.ndim == 0 else b for b in batches]
        dtype = dtype or functools.reduce(torch.promote_types, (b.dtype for b in batches))
        first = batches[0]
        if len(batches) == 1:
            outputs.append(first.to(dtype))
            continue
        if first.device.type != "cpu" or any(
            b.shape[1:] != first.shape[1:] or b.device != first.device for b in batches
        ):
            outputs.append(torch.cat(batches).to(dtype))  # torch's own errors and kernels
            continue
        rows = sum(int(b.shape[0]) for b in batches)
        out = huge_pages(torch.empty((rows, *first.shape[1:]), dtype=dtype, device=first.device))
        start = 0
        for b in batches:
            out[start : start + b.shape[0]].copy_(b)
            start += int(b.shape[0])
        outputs.append(out)
    return outputs
