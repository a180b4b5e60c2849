"""The evaluation LightningModule: backbone forward per batch into per-dataset prediction
buffers; once per epoch, the gathered predictions of each dataset go to the scorer."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import lightning as L
import torch
from torch import nn

from imagenet_multilabel.core.distributed import raise_if_any_rank_failed
from imagenet_multilabel.core.runtime import InFlight, one_torch_thread
from imagenet_multilabel.scoring.metrics.buffer import PredictionBuffer, Predictions
from imagenet_multilabel.scoring.metrics.names import flatten_metrics
from imagenet_multilabel.scoring.scorer import Scorer

log = logging.getLogger(__name__)


def to_memory_format(model: nn.Module, channels_last: bool) -> bool:
    """``model`` in channels-last memory format where asked and possible, else contiguous;
    whether it is channels-last (what run.json records as ``channels_last``). A model
    with parameters that cannot take it (e.g. lambda_resnet26t's 5-d ones) runs
    contiguous."""
    if not channels_last:
        return False
    try:
        model.to(memory_format=torch.channels_last)
    except RuntimeError as e:
        log.info("channels-last memory format not applied: %s", e)
        model.to(memory_format=torch.contiguous_format)
        return False
    return True


class EvaluationModule(L.LightningModule):
    """Scores one backbone on several datasets (one validation dataloader each).

    Args:
        backbone: the classifier; its logits are the only thing the scorer sees.
        scorer: heads -> metrics for each dataset's gathered predictions.
        dataset_sizes: dataset name -> number of images, in dataloader order.
        with_valid: dataset names that come with multi-hot valid labels.
        channels_last: run the forward pass in channels-last memory format.
        forward_batch_size: pad smaller batches to this size for the forward pass (the
            loader's batch size), so that logits are bitwise the same however the images
            are sharded and batched (see docs/distributed.md).
        normalize: turns the loader's uint8 batches into the backbone's input on the
            device (see :class:`~imagenet_multilabel.data.loading.transforms.Normalize`); None when
            the loader already yields normalised float images.
        parallel_batches: on CPU, run this many batches at once, each on its own thread
            with one torch thread (torch's thread count is set to 1 for the loop and
            restored for the metrics). Cores then never wait for each other inside an
            operator, and a loader worker taking a core slows one batch instead of every
            operator of all of them. 1: one batch at a time, its operators split over
            torch's threads.
        class_subsets: dataset name -> the classes it is scored on (None: all); the
            stored predictions keep every class's logits.
        main_labels: dataset name -> each image's main object in dataset order (label
            sets that name one, e.g. Tsipras et al.'s), scored as ``main_top1``.

    After validation, ``results`` maps each dataset to ``(metrics, predictions)``.
    """

    def __init__(
        self,
        backbone: nn.Module,
        scorer: Scorer,
        dataset_sizes: Mapping[str, int],
        with_valid: set[str] | frozenset[str] = frozenset(),
        channels_last: bool = True,
        forward_batch_size: int | None = None,
        normalize: nn.Module | None = None,
        parallel_batches: int = 1,
        class_subsets: Mapping[str, Sequence[int] | None] | None = None,
        main_labels: Mapping[str, torch.Tensor | None] | None = None,
    ) -> None:
        super().__init__()
        if parallel_batches < 1:
            raise ValueError(f"parallel_batches must be >= 1, got {parallel_batches}")
        scorer.check_labels({name: name in with_valid for name in dataset_sizes})
        self.parallel_batches = parallel_batches
        self._in_flight: InFlight | None = None
        self._one_thread = contextlib.ExitStack()
        self.forward_batch_size = forward_batch_size
        self.backbone = backbone
        self.scorer = scorer
        self.class_subsets = dict(class_subsets or {})
        self.main_labels = dict(main_labels or {})
        self.dataset_names = list(dataset_sizes)
        self.channels_last = channels_last
        num_classes = getattr(backbone, "num_classes", None)  # timm models have it
        valid_classes = getattr(backbone, "valid_classes", num_classes)
        self.normalize = normalize
        self.stores = nn.ModuleList(
            PredictionBuffer(
                size,
                with_valid=name in with_valid,
                num_classes=num_classes,
                valid_classes=valid_classes,
            )
            for name, size in dataset_sizes.items()
        )
        self.results: dict[str, tuple[dict[str, float], Predictions]] = {}
        # perf_counter() when the first batch's logits were stored; the seconds scoring took
        self.first_batch_done: float | None = None
        self.scoring_seconds: float | None = None
        self.channels_last = to_memory_format(self.backbone, channels_last)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.prepare(images))

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """The loader's batch as the backbone's input (memory format, normalisation)."""
        if self.channels_last:  # before normalising: reorders 1-byte pixels, not floats
            images = images.contiguous(memory_format=torch.channels_last)
        if self.normalize is not None:  # keeps the memory format
            images = self.normalize(images).to(self.dtype)  # float16/bf16 under "-true" precision
        return images

    def on_validation_start(self) -> None:
        if self.parallel_batches > 1 and self.device.type == "cpu":
            self._one_thread.enter_context(one_torch_thread())
            self._in_flight = InFlight(self.parallel_batches, name="forward")

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
        if self._in_flight is None:
            self._store(dataloader_idx, batch, self(images)[:n])
            return
        # a thread that is done starts the queued batch at once; the batches that finished
        # meanwhile are stored (in any order: the buffers sort by image index)
        label = f"the forward pass of batch {batch_idx} of '{self.dataset_names[dataloader_idx]}'"
        tag = (dataloader_idx, batch, n)
        self._store_all(lambda: self._in_flight.submit(self, images, tag=tag, label=label))

    def _store_all(self, finished: Callable[[], list]) -> None:
        """Store the batches ``finished()`` hands back; on an error (of a forward thread,
        raised here) the threads stop and torch gets its thread count back first."""
        try:
            for (idx, batch, size), logits in finished():
                self._store(idx, batch, logits[:size])
        except BaseException:
            self.release()  # Lightning calls no hook of a LightningModule on an error
            raise

    def _store(self, dataloader_idx: int, batch: dict[str, Any], logits: torch.Tensor) -> None:
        if self.first_batch_done is None:
            self.first_batch_done = time.perf_counter()
        self.stores[dataloader_idx].update(
            batch["index"], logits.float(), batch["target"], batch.get("valid")
        )

    def release(self) -> None:
        """Stop the forward threads and give torch its thread count back (idempotent)."""
        if self._in_flight is not None:
            self._in_flight.close()
            self._in_flight = None
            self._one_thread.close()  # the metrics use every thread again

    def on_validation_epoch_end(self) -> None:
        scoring_start = time.perf_counter()
        self.results = {}
        for name, preds in self.gather_predictions().items():
            metrics = self.scorer.score(
                name,
                preds.logits,
                preds.target,
                preds.valid,
                self.class_subsets.get(name),
                main=self.main_labels.get(name),
            )
            self.results[name] = (metrics, preds)
        self.scoring_seconds = time.perf_counter() - scoring_start
        self.log_results(flatten_metrics({n: m for n, (m, _) in self.results.items()}))

    def gather_predictions(self) -> dict[str, Predictions]:
        """Collective: every dataset's predictions from all ranks, in dataset order (the
        buffers are reset). Every rank, also one whose data failed, gets here: all end
        with the same error."""
        if self._in_flight is not None:
            self._store_all(self._in_flight.drain)
        self.release()
        failure = getattr(self.trainer.datamodule, "failure", None)
        raise_if_any_rank_failed(failure, self.trainer)
        gathered = {}
        for name, buffer in zip(self.dataset_names, self.stores, strict=True):
            gathered[name] = buffer.compute()  # collective: every rank gathers the full dataset
            buffer.reset()
        return gathered

    def log_results(self, flat: dict[str, float]) -> None:
        """Called on every rank with the same metrics; rank 0 sends them to the loggers."""
        if self.trainer.is_global_zero:
            for logger in self.loggers:
                logger.log_metrics(flat, step=self.global_step)

    def teardown(self, stage: str) -> None:
        self.release()
