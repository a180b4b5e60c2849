"""Checks of the fine-tuning settings of ``train.py``: from the config alone before torch
is imported (:func:`check_training_settings`, with the loss, optimizer, schedule, fit
lengths, validation, checkpoint, augmentation, feature cache and ``optimized_metric``
form, the checkpoint files named, a batch the composites can fill, the optimizer's name
from ``training/timm_optimizers.py`` where the installed timm is the version listed
there), the optimizer's name in timm's own list last where timm is another version, and
before the first forward pass what needs the data (:func:`check_train_parts`).
``checks.py`` runs them in order."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from imagenet_multilabel.core.checkpoints import check_checkpoint_option, resume_path
from imagenet_multilabel.core.checks import choice, plain, real, value_at, whole
from imagenet_multilabel.core.errors import UserError
from imagenet_multilabel.scoring.checks import check_optimized_metric, metric_prefixes
from imagenet_multilabel.scoring.metrics.catalog import check_metric_name
from imagenet_multilabel.scoring.metrics.names import (
    is_count,
    is_metric_key,
    metric_key,
    split_metric_key,
)
from imagenet_multilabel.training import timm_optimizers
from imagenet_multilabel.training.choices import FINETUNE_MODES, FIT_SET_NAMES, FIT_STAGES

SCHEDULES = ("cosine", "constant")
FLOAT32_MAX = 3.4028234663852886e38
# on/off settings of conf/train.yaml beyond core/checks.py's SWITCHES
TRAIN_SWITCHES = (
    "drop_last",
    "composites.enabled",
    "finetune.cache_features",
    "augment.enabled",
    "early_stopping.enabled",
)
AUGMENT_INTERPOLATIONS = ("random", "bilinear", "bicubic", "nearest", "lanczos", "hamming")


def check_training_settings(cfg: DictConfig) -> None:
    """The fine-tuning settings of ``train.py`` that can be judged from the config alone
    (after the run settings, before the loggers' folders and the trainer): types, ranges,
    names and combinations. What needs the data or the model is checked by
    :func:`check_train_parts` before the first forward pass, the optimizer's name in timm
    here where timm's list is known without importing it (``training/timm_optimizers.py``
    of the installed version), else by :func:`check_optimizer_name` once everything else
    passed."""
    precision = str(value_at(cfg, "trainer.precision"))
    if precision.startswith("16") and str(value_at(cfg, "trainer.accelerator")) == "cpu":
        raise UserError(f"precision={precision} needs a GPU: use bf16-mixed or 32-true on CPU")
    for key in TRAIN_SWITCHES:
        value = value_at(cfg, key)
        if value is not None and not isinstance(value, bool):
            raise UserError(f"{key}={value!r} is not valid: give true or false")
    whole(cfg, "train_batch_size", 1, what="give a whole number of images per step, >= 1")
    choice(cfg, "final_eval", ("images", "features"))
    choice(cfg, "finetune.mode", FINETUNE_MODES)
    whole(cfg, "finetune.last_n", 1, what="give a whole number of stages, >= 1")
    if cfg.final_eval == "features" and not (
        cfg.finetune.mode == "head" and cfg.finetune.cache_features
    ):
        raise UserError("final_eval=features needs finetune.mode=head with cached features")
    # split
    whole(cfg, "split.seed", 0)
    real(cfg, "split.heldout_fraction", 0.0, 1.0, open_high=True)
    whole(cfg, "split.heldout_classes", 0, what="give the number of classes kept out, >= 0")
    # composites
    if value_at(cfg, "composites.enabled"):
        for key in ("composites.rows", "composites.cols"):
            whole(cfg, key, 1, what="give a whole number of tiles, >= 1")
        tiles = int(cfg.composites.rows) * int(cfg.composites.cols)
        if not 2 <= tiles <= 4:
            raise UserError(
                f"composites.rows={cfg.composites.rows} composites.cols={cfg.composites.cols} "
                f"makes {tiles} tiles: a composite has 2 to 4 (e.g. rows=1 cols=2, rows=2 "
                "cols=2), or set composites.enabled=false"
            )
        for key in ("composites.train_images", "composites.eval_images"):
            whole(cfg, key, 1, what="give a whole number of composites, >= 1")
        whole(cfg, "composites.seed", 0)
        # the training set is the composites: its size is known before the data is read
        check_batch_fills(cfg, int(cfg.composites.train_images))
    check_loss_settings(cfg)
    check_optim_settings(cfg)
    check_fit_settings(cfg)
    # regularize / augment
    real(cfg, "regularize.l2_to_pretrained", 0.0)
    choice(cfg, "regularize.train_rows", ("all", "seen"))
    check_augment(cfg)
    # outputs
    check_feature_cache(cfg.get("feature_cache"))
    check_train_optimized_metric(cfg)
    for key in ("ckpt_path", "init_from"):
        value = cfg.get(key)
        if value is not None and not isinstance(value, str):
            raise UserError(f"{key}={value!r} is not valid: give a checkpoint file")
    if cfg.get("ckpt_path") and cfg.get("init_from"):
        raise UserError(
            "ckpt_path and init_from are both set: ckpt_path resumes this run, init_from "
            "starts a new run from other weights; pass one"
        )
    check_checkpoint_settings(cfg)


def check_checkpoint_settings(cfg: DictConfig) -> None:
    """The checkpoints ``ckpt_path`` and ``init_from`` name are files torch may load: a
    damaged one is refused in the line ``backbones.read_checkpoint`` prints when loading
    finds the damage (both from ``core/checkpoints.py``)."""
    out = Path(str((cfg.get("paths") or {}).get("output_dir") or "."))
    check_checkpoint_option(
        cfg.get("ckpt_path"), "ckpt_path", resume_path(cfg.get("ckpt_path"), out)
    )
    check_checkpoint_option(cfg.get("init_from"), "init_from")


def check_batch_fills(cfg: DictConfig, train_size: int) -> None:
    """A batch of ``train_batch_size`` that the ``train_size`` training images can fill
    where ``drop_last`` drops a batch that is not full."""
    batch = int(cfg.train_batch_size)
    if cfg.drop_last and batch > train_size:
        raise UserError(
            f"train_batch_size={batch} is larger than the {train_size} training images and "
            "drop_last=true drops every batch: lower train_batch_size or set drop_last=false"
        )


def optimizer_names(ask_timm: bool = True) -> tuple[str, ...] | None:
    """timm's optimizer names: the list in ``training/timm_optimizers.py`` where the
    installed timm is the version it was taken from (no import of timm), else timm's own
    (``ask_timm``: imports timm, and torch) or None."""
    try:
        version = importlib.metadata.version("timm")
    except importlib.metadata.PackageNotFoundError:
        version = None
    if version == timm_optimizers.TIMM_VERSION:
        return timm_optimizers.NAMES
    if not ask_timm:
        return None
    from timm.optim import list_optimizers  # timm imports torch: checked last

    return tuple(list_optimizers())


def check_optimizer_name(cfg: DictConfig, early: bool = False) -> None:
    """``optim.opt`` is one of timm's optimizers (a ``<prefix>_<name>`` such as
    ``lookahead_adam`` by its last part). ``early``: from the config check, before torch,
    only where the names of the installed timm are known without importing it
    (:func:`optimizer_names`); else after everything else, with timm's list."""
    known = optimizer_names(ask_timm=not early)
    if known is None:
        return  # another timm than the listed one: judged later, by timm's own list
    opt = str(cfg.optim.opt).lower()
    if opt not in known and opt.split("_")[-1] not in known:
        close = [n for n in known if n.startswith(opt[:3])][:6]
        raise UserError(
            f"optim.opt={cfg.optim.opt!r} is not an optimizer of timm: use e.g. "
            f"{', '.join(close or ['adam', 'adamw', 'sgd'])} (timm.optim.list_optimizers())"
        )


def check_loss_settings(cfg: DictConfig) -> None:
    """``loss.*`` ranges, ``loss.keep_unseen`` with the head-only fine-tuning it needs and
    ``loss.soft_labels`` with the photos (not composites) whose scores it takes."""
    soft = value_at(cfg, "loss.soft_labels")
    if soft is not None and not isinstance(soft, bool):
        raise UserError(f"loss.soft_labels={soft!r} is not valid: give true or false")
    if soft and value_at(cfg, "composites.enabled"):
        raise UserError(
            "loss.soft_labels takes the raters' scores of photos; composites are labelled by "
            "their tiles' classes, without scores: set composites.enabled=false"
        )
    keep = value_at(cfg, "loss.keep_unseen")
    if keep is not None:
        real(cfg, "loss.keep_unseen", 0.0, 1.0)
    if keep and cfg.finetune.mode != "head":
        raise UserError(
            f"loss.keep_unseen needs finetune.mode=head (the pretrained logits of the frozen "
            f"backbone): for finetune.mode={cfg.finetune.mode} use loss=soft_ce or another loss"
        )
    for key in ("gamma_neg", "gamma_pos", "clip", "smoothing"):
        if value_at(cfg, f"loss.{key}") is not None:
            real(cfg, f"loss.{key}", 0.0, 1.0 if key in ("clip", "smoothing") else None)


def check_optim_settings(cfg: DictConfig) -> None:
    """``optim.*`` and ``sched.*`` ranges, and the optimizer's name where timm's names are
    known without importing it (:func:`check_optimizer_name`)."""
    opt = value_at(cfg, "optim.opt")
    if not isinstance(opt, str) or not opt:
        raise UserError(f"optim.opt={opt!r} is not valid: give an optimizer name of timm")
    check_optimizer_name(cfg, early=True)
    if (real(cfg, "optim.lr", 0.0) or 0.0) > FLOAT32_MAX:
        raise UserError(
            f"optim.lr={cfg.optim.lr!r} is beyond float32 (the optimizers' parameters): give "
            "a learning rate such as 1e-3"
        )
    for key in ("weight_decay", "momentum"):
        if value_at(cfg, f"optim.{key}") is not None:
            real(cfg, f"optim.{key}", 0.0)
    real(cfg, "optim.layer_decay", 0.0, 1.0, allow_none=True, open_low=True)
    choice(cfg, "sched.name", SCHEDULES)
    if cfg.sched.name == "cosine":
        whole(cfg, "sched.warmup_steps", 0, allow_none=True)
        real(cfg, "sched.warmup_lr_init", 0.0, allow_none=True)
        real(cfg, "sched.lr_min", 0.0, allow_none=True)
        whole(cfg, "sched.total_steps", 1, allow_none=True)
        total = value_at(cfg, "sched.total_steps")
        warmup = value_at(cfg, "sched.warmup_steps") or 0
        if total is not None and warmup >= total:
            raise UserError(
                f"sched.warmup_steps={warmup} is not less than sched.total_steps={total}: "
                "lower the warmup"
            )


def lr_warning(cfg: DictConfig) -> str | None:
    """The line warning of a legal but surely unintended learning rate (0: nothing trains)."""
    if value_at(cfg, "optim.lr") == 0:
        return (
            "optim.lr=0: the weights will not change, so every fine-tuned metric equals the "
            "pretrained one (deltas 0); give a positive optim.lr to fine-tune"
        )
    return None


def check_fit_settings(cfg: DictConfig) -> None:
    """``trainer.*`` lengths, ``validate_on``, ``checkpoint.*`` and ``early_stopping.*``."""
    whole(cfg, "trainer.max_epochs", -1, allow_none=True)
    whole(cfg, "trainer.max_steps", -1, allow_none=True)
    epochs, steps = value_at(cfg, "trainer.max_epochs"), value_at(cfg, "trainer.max_steps")
    if epochs == 0 or steps == 0:
        key = "trainer.max_epochs" if epochs == 0 else "trainer.max_steps"
        raise UserError(f"{key}=0 trains nothing: give at least 1 (-1: no limit)")
    if (epochs in (None, -1)) and (steps in (None, -1)):
        raise UserError(
            "trainer.max_epochs and trainer.max_steps are both unlimited: the run would never "
            "end; give one of them"
        )
    whole(cfg, "trainer.check_val_every_n_epoch", 1, allow_none=True)
    interval = value_at(cfg, "trainer.val_check_interval")
    if interval is not None:
        real(cfg, "trainer.val_check_interval", 0.0, open_low=True)
    whole(cfg, "trainer.log_every_n_steps", 1, allow_none=True)
    whole(cfg, "trainer.num_sanity_val_steps", -1, allow_none=True)
    whole(cfg, "trainer.accumulate_grad_batches", 1, allow_none=True)
    real(cfg, "trainer.gradient_clip_val", 0.0, allow_none=True)
    validate_on = cfg.get("validate_on")
    if validate_on is None or isinstance(validate_on, str) or not hasattr(validate_on, "__iter__"):
        raise UserError(
            f"validate_on={validate_on!r} is not valid: give a list of sets, e.g. "
            f"[{', '.join(FIT_SET_NAMES[:2])}] ([] for none)"
        )
    for name in validate_on:
        if name not in FIT_SET_NAMES:
            raise UserError(
                f"validate_on: {name!r} is not a set of train.py: use {', '.join(FIT_SET_NAMES)}"
            )
    choice(cfg, "checkpoint.mode", ("max", "min"))
    whole(cfg, "checkpoint.every_n_steps", 1, allow_none=True)
    monitor = value_at(cfg, "checkpoint.monitor")
    if monitor not in (None, "auto") and not isinstance(monitor, str):
        raise UserError(f"checkpoint.monitor={monitor!r} is not valid: give <set>/<metric>")
    if isinstance(monitor, str) and monitor not in ("auto", "none", "null"):
        name = split_metric_key(monitor)[0]
        if not is_metric_key(monitor) or name not in validate_on:
            raise UserError(
                f"checkpoint.monitor={monitor!r} is not '<set>/<metric>' of a validated set "
                f"(validate_on: {', '.join(validate_on) or 'none'})"
            )
        check_metric_name(
            f"checkpoint.monitor={monitor}",
            split_metric_key(monitor)[1],
            metric_prefixes(cfg.get("head")),
        )
    validated = (
        bool(validate_on)
        and epochs not in (None, -1)
        and ((value_at(cfg, "trainer.check_val_every_n_epoch") or 1) <= epochs)
    )
    monitored = isinstance(monitor, str) and is_metric_key(monitor)
    if monitored and epochs not in (None, -1) and not validated:
        raise UserError(
            f"checkpoint.monitor={monitor} needs validation, but trainer.check_val_every_n_epoch"
            f"={cfg.trainer.check_val_every_n_epoch} > trainer.max_epochs={epochs}: no "
            "validation would run; lower the interval or set checkpoint.monitor=null"
        )
    if value_at(cfg, "early_stopping.enabled"):
        whole(cfg, "early_stopping.patience", 0)
        real(cfg, "early_stopping.min_delta", 0.0)
        if monitor in (None, "none", "null"):
            raise UserError("early_stopping needs a metric: set checkpoint.monitor=<set>/<metric>")
        if not validate_on:
            raise UserError("early_stopping needs validation: give validate_on a set")


def check_augment(cfg: DictConfig) -> None:
    """``augment.*``: crop scale and ratio ranges, flip and jitter, a timm policy."""
    node = cfg.get("augment") or {}
    for key, low, high in (("scale", 0.0, 1.0), ("ratio", 0.0, None)):
        values = node.get(key)
        if values is None:
            continue
        try:
            pair = [float(v) for v in values]
        except (TypeError, ValueError):
            pair = []
        if len(pair) != 2 or pair[0] <= low or pair[0] > pair[1] or (high and pair[1] > high):
            span = f"({low:g}, {high:g}]" if high else "positive"
            raise UserError(
                f"augment.{key}={plain(values)!r} is not valid: give [low, high], low <= high, "
                f"both {span}"
            )
    real(cfg, "augment.hflip", 0.0, 1.0, allow_none=True)
    real(cfg, "augment.color_jitter", 0.0, allow_none=True)
    choice(cfg, "augment.interpolation", AUGMENT_INTERPOLATIONS, allow_none=True)
    auto = node.get("auto_augment")
    if auto is not None and not (
        isinstance(auto, str) and auto.split("-")[0] in ("rand", "augmix", "original", "v0", "3a")
    ):
        raise UserError(
            f"augment.auto_augment={auto!r} is not valid: give null or a timm policy "
            "(e.g. rand-m9-mstd0.5, augmix-m5, original, v0, 3a)"
        )


def check_feature_cache(value: Any) -> None:
    """``feature_cache``: null or a folder (created when missing), never a file."""
    if value is None:
        return
    if not isinstance(value, str) or not value:
        raise UserError(f"feature_cache={value!r} is not valid: give a folder or null")
    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():
        raise UserError(
            f"feature_cache={value} is a file, not a folder: give a folder for the cached "
            "features (it is created when missing)"
        )


def check_train_optimized_metric(cfg: DictConfig) -> None:
    """``optimized_metric`` has the form of train's metrics.json keys
    (``<set>/<stage>.<metric>``); whether the metric exists is checked before the first
    forward pass (:func:`check_train_parts`)."""
    name = cfg.get("optimized_metric")
    if name is None:
        return
    if not isinstance(name, str) or not name:
        raise UserError(f"optimized_metric={name!r} is not valid: give <set>/<stage>.<metric>")
    part, rest = split_metric_key(name)
    stage = rest.partition(".")[0]
    if part not in FIT_SET_NAMES or stage not in FIT_STAGES or "." not in rest:
        raise UserError(
            f"optimized_metric={name!r} is not a metric of train.py: give "
            f"<set>/<stage>.<metric>, set one of {', '.join(FIT_SET_NAMES)}, stage one of "
            f"{', '.join(FIT_STAGES)} (e.g. heldout_seen/finetuned.vartopk_strict)"
        )
    stages = tuple(f"{s}." for s in FIT_STAGES)
    prefixes = metric_prefixes(cfg.get("head"), stages)
    check_metric_name(f"optimized_metric={name}", rest, prefixes, sweep=True)


def check_train_parts(
    cfg: DictConfig, train_size: int, set_names: list[str], metric_names: dict[str, list[str]]
) -> None:
    """What needs the data, before the first forward pass: a batch the training set can
    fill with ``drop_last``, the monitored and the optimized
    metric among the run's (``metric_names``: set -> its metrics)."""
    check_batch_fills(cfg, train_size)  # composites: refused already, from the config
    monitor = cfg.checkpoint.monitor
    if isinstance(monitor, str) and is_metric_key(monitor):
        part, metric = split_metric_key(monitor)
        if part in metric_names and metric not in metric_names[part]:
            raise UserError(
                f"checkpoint.monitor={monitor!r}: {part} has no metric {metric!r} (e.g. "
                f"{', '.join(metric_names[part][:4])})"
            )
        if part not in set_names:
            raise UserError(
                f"checkpoint.monitor={monitor!r}: this split has no {part} set (it has "
                f"{', '.join(set_names)}): monitor another set or set checkpoint.monitor=auto"
            )
    keys = {
        metric_key(s, f"{stage}.{m}")
        for s, names in metric_names.items()
        for stage in FIT_STAGES
        for m in names
        if not (stage == "delta" and is_count(m))
    }
    check_optimized_metric(dict.fromkeys(sorted(keys), 0.0), cfg.get("optimized_metric"))
