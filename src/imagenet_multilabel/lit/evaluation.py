"""The evaluation LightningModule: backbone forward per batch into per-dataset prediction
buffers; once per epoch, gathered predictions -> heads -> metrics."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

import lightning as L
import torch
from torch import nn

from ..distributed import raise_if_any_rank_failed
from ..errors import UserError
from ..metrics.buffer import PredictionBuffer, Predictions
from ..models.heads import Head, apply_heads
from ..runtime import in_caller_modes

log = logging.getLogger(__name__)


class EvaluationModule(L.LightningModule):
    """Scores one backbone on several datasets (one validation dataloader each).

    Args:
        backbone: the classifier; its logits are the only thing heads see.
        heads: name -> head. A head that ``needs_labels`` is skipped for datasets without
            a label set when it is in ``optional_heads``, and is an error otherwise.
        dataset_sizes: dataset name -> number of images, in dataloader order.
        with_valid: dataset names that come with multi-hot valid labels.
        channels_last: run the forward pass in channels-last memory format.
        forward_batch_size: pad smaller batches to this size for the forward pass (the
            loader's batch size), so that logits are bitwise the same however the images
            are sharded and batched (see docs/distributed.md).
        normalize: turns the loader's uint8 batches into the backbone's input on the
            device (see :class:`~imagenet_multilabel.data.transforms.Normalize`); None when
            the loader already yields normalised float images.
        parallel_batches: on CPU, run this many batches at once, each on its own thread
            with one torch thread (torch's thread count is set to 1 for the loop and
            restored for the metrics). Cores then never wait for each other inside an
            operator, and a loader worker taking a core slows one batch instead of every
            operator of all of them. 1: one batch at a time, its operators split over
            torch's threads.
    """

    def __init__(
        self,
        backbone: nn.Module,
        heads: Mapping[str, Head],
        dataset_sizes: Mapping[str, int],
        with_valid: set[str] | frozenset[str] = frozenset(),
        optional_heads: set[str] | frozenset[str] = frozenset(),
        channels_last: bool = True,
        forward_batch_size: int | None = None,
        normalize: nn.Module | None = None,
        parallel_batches: int = 1,
    ) -> None:
        super().__init__()
        if parallel_batches < 1:
            raise ValueError(f"parallel_batches must be >= 1, got {parallel_batches}")
        self.parallel_batches = parallel_batches
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[tuple[Future, int, dict[str, Any], int]] = []
        self._torch_threads = 0
        self.forward_batch_size = forward_batch_size
        self.backbone = backbone
        self.heads = dict(heads)
        self.dataset_names = list(dataset_sizes)
        self.optional_heads = set(optional_heads)
        self.channels_last = channels_last
        num_classes = getattr(backbone, "num_classes", None)  # timm models have it
        self.normalize = normalize
        self.stores = nn.ModuleList(
            PredictionBuffer(size, with_valid=name in with_valid, num_classes=num_classes)
            for name, size in dataset_sizes.items()
        )
        self.results: dict[str, tuple[dict[str, float], Predictions]] = {}
        for name, head in self.heads.items():
            if head.needs_labels and name not in self.optional_heads and not with_valid:
                raise UserError(
                    f"head '{name}' scores multi-label predictions but no dataset has a label "
                    "set: choose one with labels=... or use head=single"
                )
        if channels_last:
            self.backbone.to(memory_format=torch.channels_last)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.channels_last:  # before normalising: reorders 1-byte pixels, not floats
            images = images.contiguous(memory_format=torch.channels_last)
        if self.normalize is not None:  # keeps the memory format
            images = self.normalize(images).to(self.dtype)  # float16/bf16 under "-true" precision
        return self.backbone(images)

    def on_validation_start(self) -> None:
        if self.parallel_batches > 1 and self.device.type == "cpu":
            self._torch_threads = torch.get_num_threads()
            torch.set_num_threads(1)
            self._pool = ThreadPoolExecutor(self.parallel_batches, thread_name_prefix="forward")

    def validation_step(
        self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        images = batch["image"]
        n = images.shape[0]
        if self.forward_batch_size is not None and n < self.forward_batch_size:
            # Same input shape on every forward: kernels (oneDNN, cuDNN) pick their algorithm
            # by shape, so a partial batch would get other float roundings. Padded, each
            # image's logits do not depend on how the data is sharded across ranks.
            pad = images.new_zeros((self.forward_batch_size - n, *images.shape[1:]))
            images = torch.cat([images, pad])
        if self._pool is None:
            self._store(dataloader_idx, batch, self(images)[:n])
            return
        future = self._pool.submit(in_caller_modes(self), images)
        self._pending.append((future, dataloader_idx, batch, n))
        # one batch more than threads: a thread that is done starts the queued one at
        # once, without waiting for this thread to collect its result and fetch the next
        if len(self._pending) > self.parallel_batches:
            self._collect()

    def _collect(self) -> None:
        """Wait until a batch in flight is done, then store the predictions of every batch
        that is (in any order: the buffers sort by image index), so that a thread is given
        its next batch as soon as it is free, not when the oldest batch is."""
        finished = wait([p[0] for p in self._pending], return_when=FIRST_COMPLETED).done
        done = [p for p in self._pending if p[0] in finished]
        self._pending = [p for p in self._pending if p[0] not in finished]
        for future, dataloader_idx, batch, n in done:
            try:
                logits = future.result()
            except BaseException:
                self.release()  # Lightning calls no hook of ours when validate fails
                raise
            self._store(dataloader_idx, batch, logits[:n])

    def _store(self, dataloader_idx: int, batch: dict[str, Any], logits: torch.Tensor) -> None:
        self.stores[dataloader_idx].update(
            batch["index"], logits.float(), batch["target"], batch.get("valid")
        )

    def release(self) -> None:
        """Stop the forward threads and give torch its thread count back (idempotent)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            self._pending.clear()
            torch.set_num_threads(self._torch_threads)  # the metrics use every thread again

    def on_validation_epoch_end(self) -> None:
        while self._pending:
            self._collect()
        self.release()
        self.results = {}
        # every rank, also one whose data failed, gets here: all end with the same error
        failure = getattr(self.trainer.datamodule, "failure", None)
        raise_if_any_rank_failed(failure, self.trainer)
        for name, buffer in zip(self.dataset_names, self.stores, strict=True):
            preds = buffer.compute()  # collective: every rank gathers the full dataset
            buffer.reset()
            metrics = apply_heads(
                self.heads, preds.logits, preds.target, preds.valid, name, self.optional_heads
            )
            self.results[name] = (metrics, preds)
        if self.trainer.is_global_zero:
            flat = flat_metrics({n: m for n, (m, _) in self.results.items()})
            for logger in self.loggers:
                logger.log_metrics(flat, step=self.global_step)

    def teardown(self, stage: str) -> None:
        self.release()


def flat_metrics(per_dataset: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """One dataset: its metrics as they are; several: keys ``<dataset>/<metric>``."""
    if len(per_dataset) == 1:
        return dict(next(iter(per_dataset.values())))
    return {f"{d}/{k}": v for d, metrics in per_dataset.items() for k, v in metrics.items()}
