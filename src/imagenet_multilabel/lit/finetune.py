"""The fine-tuning LightningModule: the evaluation module (its validation is the evaluation
path: prediction buffers, exact under DDP, then the scorer) plus a training step.

Batches are images (the backbone runs) or cached pooled features (head-only training: only
the classifier runs, in training and in validation alike). Randomness of a step (dropout,
drop-path) is seeded by (seed, step, rank), so a resumed run draws what the uninterrupted
one drew.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from imagenet_multilabel.core.errors import UserError
from imagenet_multilabel.lit.evaluation import EvaluationModule
from imagenet_multilabel.scoring.scorer import Scorer
from imagenet_multilabel.training.losses import Loss, finite_or_raise
from imagenet_multilabel.training.params import Trainable, build_optimizer, build_scheduler
from imagenet_multilabel.training.resume import count_epoch_end_once


class HeadAnchor(nn.Module):
    """Keeps the classifier near its pretrained self: an L2 pull toward the pretrained
    weights (``l2``: the coefficient of the summed squared difference), and/or only the
    rows of ``rows`` (the classes seen in training) trained, the others left exactly as
    they were, and/or the pretrained logits (:meth:`pretrained_logits`) for the soft targets
    of the ``unseen`` classes (never seen in training). Holds the pretrained weights as
    non-persistent buffers (not in checkpoints)."""

    def __init__(
        self,
        classifier: nn.Linear,
        l2: float = 0.0,
        rows: Tensor | None = None,
        unseen: Tensor | None = None,
    ):
        super().__init__()
        self.l2 = float(l2)
        self.register_buffer("weight", classifier.weight.detach().clone(), persistent=False)
        self.register_buffer("bias", _bias(classifier), persistent=False)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("unseen", unseen, persistent=False)
        if rows is not None:
            keep = rows.to(classifier.weight.dtype)
            classifier.weight.register_hook(lambda g: g * keep[:, None].to(g.device))
            if classifier.bias is not None:
                classifier.bias.register_hook(lambda g: g * keep.to(g.device))

    @torch.no_grad()
    def pretrained_logits(self, features: Tensor) -> Tensor:
        """The pretrained classifier's logits of pooled ``features``."""
        bias = None if self.bias is None else self.bias.to(features.dtype)
        return nn.functional.linear(features, self.weight.to(features.dtype), bias)

    def penalty(self, classifier: nn.Linear) -> Tensor | None:
        if not self.l2:
            return None
        total = (classifier.weight - self.weight).pow(2).sum()
        if classifier.bias is not None:
            total = total + (classifier.bias - self.bias).pow(2).sum()
        return self.l2 * total

    @torch.no_grad()
    def restore_rows(self, classifier: nn.Linear) -> None:
        """Rows outside ``rows`` back to their pretrained values (weight decay moves them)."""
        if self.rows is None:
            return
        other = ~self.rows
        classifier.weight[other] = self.weight[other].to(classifier.weight.dtype)
        if classifier.bias is not None:
            classifier.bias[other] = self.bias[other].to(classifier.bias.dtype)


def _bias(layer: nn.Linear) -> Tensor | None:
    return None if layer.bias is None else layer.bias.detach().clone()


class FineTuneModule(EvaluationModule):
    """Fits ``backbone`` with ``loss``; validation scores the held-out datasets.

    Args (beyond :class:`EvaluationModule`'s):
        loss: the loss and its target kind.
        trainable: what is trained (``requires_grad`` already set); its frozen modules
            stay in eval mode while training.
        optim, sched: the ``optim`` / ``sched`` config nodes.
        seed: seeds each step's random draws.
        anchor: optional :class:`HeadAnchor` of the classifier.
        run_identity: the settings that define the run, stored in each checkpoint.
    """

    def __init__(
        self,
        backbone: nn.Module,
        scorer: Scorer,
        dataset_sizes: Mapping[str, int],
        with_valid: set[str] | frozenset[str] = frozenset(),
        *,
        loss: Loss,
        trainable: Trainable,
        optim: Mapping[str, Any],
        sched: Mapping[str, Any] | None,
        seed: int = 0,
        anchor: HeadAnchor | None = None,
        run_identity: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(backbone, scorer, dataset_sizes, with_valid, **kwargs)
        self.loss = loss.module
        self._loss = loss
        self.trainable = trainable
        self.optim, self.sched = dict(optim), dict(sched or {})
        self.seed = seed
        self.anchor = anchor
        self.run_identity = None if run_identity is None else dict(run_identity)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # what defines the run (tasks/train.py: run_identity), checked on resume
        if self.run_identity is not None:
            checkpoint["run_identity"] = json.dumps(self.run_identity, sort_keys=True)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # before Lightning restores its loops from it: an epoch's end counted once
        by_steps = self._trainer is not None and self._trainer.max_steps != -1
        count_epoch_end_once(checkpoint, by_steps)

    @property
    def classifier(self) -> nn.Module:
        return self.backbone.get_classifier()

    def pooled(self, images: Tensor) -> Tensor:
        """The backbone's pooled features of ``images`` (what the classifier takes)."""
        model = self.backbone
        return model.forward_head(model.forward_features(self.prepare(images)), pre_logits=True)

    def classify(self, features: Tensor) -> Tensor:
        """Logits of pooled features (what ``forward_head`` does after pooling)."""
        return self.classifier(features.to(self.dtype))

    def train(self, mode: bool = True) -> FineTuneModule:
        super().train(mode)
        if mode:
            for module in self.trainable.frozen_modules:
                module.eval()
        return self

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        self._seed_step()
        features = batch.get("features")
        keep = bool(self._loss.keep_unseen)
        if features is None and keep:  # head-only on images: the backbone is frozen
            features = self.pooled(batch["image"])
        logits = self(batch["image"]) if features is None else self.classify(features)
        pretrained, unseen = None, None
        if keep:
            pretrained = self.anchor.pretrained_logits(features.to(self.dtype))
            unseen = self.anchor.unseen
        loss = self._loss(logits.float(), batch["target"], batch.get("valid"), pretrained, unseen)
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=logits.shape[0])
        if (
            self.anchor is not None
            and (penalty := self.anchor.penalty(self.classifier)) is not None
        ):
            self.log("train/anchor", penalty.detach(), batch_size=logits.shape[0])
            loss = loss + penalty
        any_rank = (
            (lambda bad: self.trainer.strategy.reduce_boolean_decision(bad, all=False))
            if self.trainer.world_size > 1
            else None
        )
        finite_or_raise(loss, self.global_step, any_rank)
        return loss

    def _seed_step(self) -> None:
        rank = self.trainer.global_rank if self._trainer is not None else 0
        words = [self.seed, self.global_step, rank]
        torch.manual_seed(int(np.random.SeedSequence(words).generate_state(1)[0]))

    def validation_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0):
        if "features" not in batch:
            return super().validation_step(batch, batch_idx, dataloader_idx)
        self._store(dataloader_idx, batch, self.classify(batch["features"]))
        return None

    def log_results(self, flat: dict[str, float]) -> None:
        # through self.log, on every rank (the same values), so that checkpointing and
        # early stopping can monitor them
        self.log_dict(flat, add_dataloader_idx=False)

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = build_optimizer(self.backbone, self.optim)
        total = self.sched.get("total_steps") or int(self.trainer.estimated_stepping_batches)
        scheduler = build_scheduler(optimizer, self.sched, int(total))
        if scheduler is None:
            return {"optimizer": optimizer}
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def lr_scheduler_step(self, scheduler: Any, metric: Any) -> None:
        scheduler.step_update(num_updates=self.global_step)  # timm's: lr of the next update

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        try:
            super().optimizer_step(*args, **kwargs)
        except RuntimeError as e:
            if "overflow" not in str(e):
                raise
            raise UserError(
                f"the optimizer's step overflows float32 at step {self.global_step} ({e}): "
                "lower optim.lr"
            ) from None
        if self.anchor is not None:
            self.anchor.restore_rows(self.classifier)
