"""PredictionBuffer: the per-dataset store of logits that every metric is computed from.

A torchmetrics ``Metric`` with ``cat`` states, so it gathers correctly across DDP ranks
(uneven shards included). ``compute()`` returns the predictions in dataset order, after
checking that every image was seen exactly once: metrics are then computed on exactly
the tensors a single process would have, and give exactly its numbers. Shapes are those of
any dataset size: (N, C) logits, (N,) targets, also for N = 1 (torchmetrics squeezes
one-element results of ``compute`` to 0-d tensors; the buffer gives them their shape back).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat
from torchmetrics.utilities.distributed import gather_all_tensors


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

    def _wrap_compute(self, compute: Callable) -> Callable:
        # torchmetrics wraps compute (sync, cache; also after unpickling) and squeezes
        # one-element tensors: a dataset of one image would get a 0-d target (and, with one
        # class, 0-d logits)
        squeezing = super()._wrap_compute(compute)

        @functools.wraps(squeezing)
        def shaped(*args, **kwargs) -> Predictions:
            return self._shaped(squeezing(*args, **kwargs))

        return shaped

    def _shaped(self, preds: Predictions) -> Predictions:
        """``preds`` with (N, C) logits and valid labels and (N,) targets."""
        n = self.dataset_size
        return replace(
            preds,
            logits=preds.logits.reshape(n, -1),
            target=preds.target.reshape(n),
            valid=None if preds.valid is None else preds.valid.reshape(n, -1),
            index=None if preds.index is None else preds.index.reshape(n),
        )

    def update(
        self, index: Tensor, logits: Tensor, target: Tensor, valid: Tensor | None = None
    ) -> None:
        self.index.append(index.long())
        self.logits.append(logits.float())
        self.target.append(target.long())
        if self.with_valid:
            if valid is None:
                raise ValueError("this buffer stores valid labels but none were given")
            self.valid.append(valid.to(torch.uint8))

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
        lowest rank's first)."""
        # before a sync the states are lists of batches; after one, tensors
        if isinstance(self.index, list) and not self.index:
            raise RuntimeError("no predictions were recorded: call update() first")
        index = dim_zero_cat(self.index)
        logits, target = dim_zero_cat(self.logits), dim_zero_cat(self.target)
        valid = dim_zero_cat(self.valid).bool() if self.with_valid else None
        if index.numel() < 2 or bool((index[1:] >= index[:-1]).all()):
            return index, logits, target, valid  # in order already: no sort, no copy
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
