"""The order in which a task's settings are checked, before anything slow (model creation,
weight requests, dataset scans): each concept's checks live beside it (``core/checks.py``
the runtime block, ``data/checks.py`` the datasets and preprocessing,
``data/labels/files.py`` the ``labels`` option, ``core/checkpoints.py`` the
checkpoint files, ``lit/checks.py`` the trainer,
``reports/gallery/options.py`` the gallery, ``scoring/checks.py`` ``optimized_metric``,
``runs/checks.py`` the output folders, ``training/checks.py`` fine-tuning), and this
module only calls them in turn, once per run (``entry/run.py``'s ``run_task``, or the
multirun job in ``sweeps/job.py``). Each failure is one
:class:`~imagenet_multilabel.core.errors.UserError` line that says what to change.
Imports no torch: the trainer's and optimizer's checks, which import Lightning and timm,
come last."""

from __future__ import annotations

from omegaconf import DictConfig

from imagenet_multilabel.core.checkpoints import check_checkpoint_option
from imagenet_multilabel.core.checks import check_runtime_settings
from imagenet_multilabel.data.checks import check_data_roots, check_preprocess
from imagenet_multilabel.data.labels.files import check_labels_option
from imagenet_multilabel.lit.checks import check_trainer
from imagenet_multilabel.reports.gallery.options import check_gallery
from imagenet_multilabel.runs.checks import check_logger_dirs
from imagenet_multilabel.scoring.checks import check_optimized_metric_form, metric_prefixes
from imagenet_multilabel.training.checks import check_optimizer_name, check_training_settings


def check_run_settings(cfg: DictConfig, trainer: bool = True) -> None:
    """Loader, thread, preprocessing and output settings of an evaluation-like task;
    ``trainer``: also ``trainer.*`` (which imports Lightning, so it comes last)."""
    check_runtime_settings(cfg)
    check_preprocess(cfg.get("preprocess") or {})
    if cfg.get("data") is not None:
        check_data_roots(cfg.data)
    check_labels_option(cfg.get("labels"))
    check_checkpoint_option((cfg.get("model") or {}).get("checkpoint"), "model.checkpoint")
    check_logger_dirs(cfg)  # evaluate's and train's
    if trainer and cfg.get("trainer") is not None:
        check_trainer(cfg.trainer)
    check_gallery(cfg.get("gallery"))  # what the run writes at its end
    # train.py's metric names have a stage: training/checks.py checks them
    train = cfg.get("task_name") == "train"
    prefixes = None if train else metric_prefixes(cfg.get("head"))
    check_optimized_metric_form(cfg.get("optimized_metric"), prefixes)


def check_train_settings(cfg: DictConfig) -> None:
    """Every setting of ``train.py`` that can be judged from the config alone, before torch
    is imported: types, ranges, names and combinations, each refused in one line that
    names the setting as conf/train.yaml spells it, and the checkpoint files it names
    (``core/checkpoints.py``). What needs the data or the model (the training set's size
    where the config does not give it) is checked by ``training/checks.py``'s
    ``check_train_parts`` before the first forward pass."""
    check_run_settings(cfg, trainer=False)
    check_training_settings(cfg)
    check_trainer(cfg.trainer)  # last: it imports Lightning (and torch)
    check_optimizer_name(cfg)
