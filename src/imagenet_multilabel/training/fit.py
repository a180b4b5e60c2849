"""The parts of a fine-tuning fit: the module and its data (images, or cached features),
the training transform, the classifier's anchor, and the checkpoints (best.ckpt by the
monitored metric, last.ckpt every few steps with the one before it kept)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from imagenet_multilabel.core.checkpoints import previous_checkpoint
from imagenet_multilabel.core.errors import UserError
from imagenet_multilabel.data.loading.settings import LoaderSettings
from imagenet_multilabel.data.loading.transforms import Normalize
from imagenet_multilabel.lit.evaluation import to_memory_format
from imagenet_multilabel.lit.finetune import FineTuneModule, HeadAnchor
from imagenet_multilabel.models.backbones import Backbone
from imagenet_multilabel.scoring.metrics.buffer import Predictions
from imagenet_multilabel.scoring.metrics.names import is_metric_key, split_metric_key
from imagenet_multilabel.scoring.scorer import Scorer
from imagenet_multilabel.training.data import FeatureDataset, FitDataModule
from imagenet_multilabel.training.fit_sets import FitSets
from imagenet_multilabel.training.losses import Loss
from imagenet_multilabel.training.params import Trainable

MONITOR_AUTO = (
    "heldout_seen/vartopk_strict",
    "train_recombined/vartopk_strict",
    "heldout_seen/top1",
)

# the pretrained pass of each set: (pooled features, pretrained predictions)
Extracted = dict[str, tuple[torch.Tensor, Predictions]]


@dataclass
class FitPlan:
    """What a fit is made of besides the config, the model, the scorer and the sets."""

    loss: Loss
    trainable: Trainable
    train_transform: Callable | None
    validate_on: list[str]
    loader: LoaderSettings
    common: dict[str, Any]  # :func:`module_options`
    identity: dict[str, Any] | None = None  # stored in each checkpoint
    extracted: Extracted | None = None  # cached features: train the head on them


def module_options(
    cfg: DictConfig, backbone: Backbone, loader: LoaderSettings, threads: int
) -> dict[str, Any]:
    p = backbone.preprocessing
    return {
        # the memory format applied once here, as it can be: every module gets the same
        "channels_last": to_memory_format(backbone.model, cfg.channels_last),
        "forward_batch_size": loader.batch_size,
        "normalize": Normalize(p["mean"], p["std"]) if cfg.normalize_on_device else None,
        "parallel_batches": threads if cfg.cpu_parallel == "batches" else 1,
    }


def training_transform(
    cfg: DictConfig, backbone: Backbone, cached: bool
) -> tuple[Callable, dict[str, Any]]:
    """timm's training transform (``augment.*``), or the eval transform when images are not
    augmented (cached features: each image passes the backbone once)."""
    eval_tf = backbone.eval_transform(normalize=not cfg.normalize_on_device)
    if cached:
        return eval_tf, {"applied": False, "reason": "head-only training on cached features"}
    options = OmegaConf.to_container(cfg.augment, resolve=True)
    if not options.pop("enabled"):
        return eval_tf, {"applied": False, "reason": "augment.enabled=false"}
    from timm.data import create_transform  # timm's data pipeline: only where augmenting

    p = backbone.preprocessing
    transform = create_transform(
        input_size=p["input_size"],
        is_training=True,
        mean=p["mean"],
        std=p["std"],
        normalize=not cfg.normalize_on_device,
        **options,
    )
    return transform, {"applied": True, **options, "transform": repr(transform)}


def resolve_monitor(value: str | None, validate_on: list[str]) -> str | None:
    """The metric that picks best.ckpt: ``auto`` = the first of MONITOR_AUTO validated
    (never a held-out class: that is what forgetting is measured on)."""
    if value in (None, "none", "null"):
        return None
    if value == "auto":
        return next((m for m in MONITOR_AUTO if split_metric_key(m)[0] in validate_on), None)
    if not is_metric_key(value) or split_metric_key(value)[0] not in validate_on:
        raise UserError(
            f"checkpoint.monitor={value!r} is not '<set>/<metric>' of a validated set "
            f"({', '.join(validate_on) or 'none'})"
        )
    return value


class AtomicCheckpoint(ModelCheckpoint):
    """A checkpoint written under a temporary name, then renamed: a process killed while
    writing it leaves the previous checkpoint whole (Lightning writes into the file
    itself, and a kill inside the write left a damaged best.ckpt or last.ckpt)."""

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        tmp = f"{filepath}.tmp"
        trainer.save_checkpoint(tmp, self.save_weights_only)
        if trainer.is_global_zero:
            os.replace(tmp, filepath)
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(self)


class KeepPrevious(AtomicCheckpoint):
    """last.ckpt, the one before it kept as last.prev.ckpt (a hard link: no copy; the
    new file replaces the name atomically), so that a damaged last.ckpt can be given up
    for the previous one."""

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        if trainer.is_global_zero and os.path.isfile(filepath):
            prev = previous_checkpoint(Path(filepath))
            tmp = prev.with_name(prev.name + ".tmp")
            tmp.unlink(missing_ok=True)
            try:
                os.link(filepath, tmp)
            except OSError:
                shutil.copy2(filepath, tmp)
            os.replace(tmp, prev)
        super()._save_checkpoint(trainer, filepath)

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        # not after an epoch's last batch: its validation (and best.ckpt) is to come, and
        # Lightning resumes a checkpoint saved there without them; saved at the epoch's
        # end instead
        if trainer.fit_loop.epoch_loop.batch_progress.current.ready < trainer.num_training_batches:
            super().on_train_batch_end(trainer, *args, **kwargs)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._every_n_train_steps >= 1 and not self._should_skip_saving_checkpoint(trainer):
            self._save_none_monitor_checkpoint(trainer, self._monitor_candidates(trainer))
        else:
            super().on_train_epoch_end(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # the finished run's state, its last validation and best.ckpt included: a resume
        # of a finished run finds nothing left to do (the step's save came before the
        # epoch's validation, and a resume from it trained the last epoch again). Not
        # where trainer.max_steps stopped the fit right after this step's checkpoint: that
        # one resumes it exactly, also for more steps (the end of the fit has read ahead)
        by_steps = 0 < trainer.max_steps <= trainer.global_step
        if by_steps and self._last_global_step_saved == trainer.global_step:
            return
        self._save_none_monitor_checkpoint(trainer, self._monitor_candidates(trainer))


def fit_callbacks(cfg: DictConfig, out: Path, monitor: str | None) -> dict[str, Any]:
    """best.ckpt (``monitor``; the last epoch without one), last.ckpt (every
    ``checkpoint.every_n_steps`` steps, else after each validation; and at the end of the
    fit), early stopping, the learning rate logged."""
    node = cfg.checkpoint
    dirpath = out / "checkpoints"
    callbacks: dict[str, Any] = {
        "best": AtomicCheckpoint(
            dirpath=dirpath,
            filename="best",
            monitor=monitor,
            mode=node.mode,
            save_top_k=1,
            auto_insert_metric_name=False,
            enable_version_counter=False,
            save_on_train_epoch_end=False if monitor else None,
        ),
        "last": KeepPrevious(
            dirpath=dirpath,
            filename="last",
            save_top_k=1,
            every_n_train_steps=node.every_n_steps,
            enable_version_counter=False,
        ),
    }
    if cfg.early_stopping.enabled:
        if monitor is None:
            raise UserError("early_stopping needs a metric: set checkpoint.monitor=<set>/<metric>")
        callbacks["early_stopping"] = EarlyStopping(
            monitor=monitor,
            mode=node.mode,
            patience=int(cfg.early_stopping.patience),
            min_delta=float(cfg.early_stopping.min_delta),
        )
    if cfg.get("logger"):
        callbacks["lr"] = LearningRateMonitor(logging_interval="step")
    return callbacks


def fit_parts(
    cfg: DictConfig, backbone: Backbone, scorer: Scorer, sets: FitSets, plan: FitPlan
) -> tuple[FineTuneModule, FitDataModule]:
    """The fitting module and its data: images, or cached features (``plan.extracted``)."""
    extracted, validate_on = plan.extracted, plan.validate_on
    if extracted is not None:
        features, train_preds = extracted["train"]
        train = FeatureDataset(features, train_preds.target)
        val = {n: FeatureDataset(extracted[n][0], extracted[n][1].target) for n in validate_on}
    else:
        train = sets.train_with(plan.train_transform)
        val = {n: sets.evals[n].dataset for n in validate_on}
    module = FineTuneModule(
        backbone.model,
        scorer,
        {n: len(d) for n, d in val.items()},
        with_valid={n for n in validate_on if sets.evals[n].valid is not None},
        loss=plan.loss,
        trainable=plan.trainable,
        optim=OmegaConf.to_container(cfg.optim, resolve=True),
        sched=OmegaConf.to_container(cfg.sched, resolve=True),
        seed=int(cfg.seed),
        anchor=head_anchor(cfg, backbone.model, sets),
        run_identity=plan.identity,
        **{
            **plan.common,
            "parallel_batches": 1 if extracted is not None else plan.common["parallel_batches"],
        },
    )
    loader = plan.loader
    datamodule = FitDataModule(
        train,
        sets.train_target,  # the batches' "valid": 0/1, or the soft targets
        val,
        {n: sets.evals[n].valid for n in validate_on},
        train_batch_size=int(cfg.train_batch_size),
        batch_size=loader.batch_size,
        seed=int(cfg.seed),
        seeded_items=extracted is None,
        # cached feature rows need no decoding: workers would only add start-up and copies
        num_workers=0 if extracted is not None else loader.num_workers,
        pin_memory=loader.pin_memory,
        prefetch_factor=loader.prefetch_factor,
        drop_last=bool(cfg.get("drop_last", False)),
    )
    return module, datamodule


def head_anchor(cfg: DictConfig, model: torch.nn.Module, sets: FitSets) -> HeadAnchor | None:
    """``regularize.l2_to_pretrained``, ``regularize.train_rows`` (all | seen: only the
    classifier rows of classes with a positive label in training are trained) and
    ``loss.keep_unseen`` (the pretrained logits, for the soft targets of unseen classes);
    the options' values were checked before torch (training/checks.py)."""
    reg = cfg.regularize
    keep = bool(cfg.loss.get("keep_unseen", 0.0))
    if not reg.l2_to_pretrained and reg.train_rows == "all" and not keep:
        return None
    classifier = model.get_classifier()
    if not isinstance(classifier, torch.nn.Linear):
        raise UserError("regularize.* and loss.keep_unseen need a linear classifier")
    seen = seen_classes(sets, classifier.out_features)
    return HeadAnchor(
        classifier,
        float(reg.l2_to_pretrained),
        rows=seen if reg.train_rows == "seen" else None,
        unseen=~seen if keep else None,
    )


def seen_classes(sets: FitSets, num_classes: int) -> torch.Tensor:
    """(C,) bool: the classes with a positive label in training (valid labels or a soft
    target's positive weights, else the original labels)."""
    if sets.train_target is not None:
        return (sets.train_target > 0).any(dim=0)
    rows = torch.zeros(num_classes, dtype=torch.bool)
    rows[torch.tensor(sets.train.targets)] = True
    return rows
