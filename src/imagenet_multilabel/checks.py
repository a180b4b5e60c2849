"""Checks a task runs before anything slow (model creation, weight requests, dataset
scans): config values, the model's name and class count, the output folder. Each failure
is one :class:`~.errors.UserError` line that says what to change."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from imagenet_multilabel.core.classes import NUM_CLASSES
from imagenet_multilabel.core.config import dataset_specs
from imagenet_multilabel.core.errors import ModelError, SweepError, UserError
from imagenet_multilabel.data.datasets.variants import check_imagenetv2_variant
from imagenet_multilabel.data.labels.files import check_labels_option
from imagenet_multilabel.reports.gallery.options import gallery_options
from imagenet_multilabel.scoring.metrics.names import (
    KEY_SEP,
    is_count,
    is_metric_key,
    metric_key,
    split_metric_key,
)
from imagenet_multilabel.training.names import FINETUNE_MODES, FIT_SET_NAMES, FIT_STAGES

LOGITS_DTYPES = ("float32", "float16")
CROP_MODES = ("center", "squash", "border")  # timm's eval transform
# on/off settings of conf/evaluate.yaml: a typo ("yes", "maybe") would be truthy
SWITCHES = ("channels_last", "normalize_on_device", "compile", "keep_freed_memory", "pin_memory")


def _int(cfg: Mapping[str, Any], key: str, low: int, what: str, allow_none: bool = False) -> None:
    value = cfg.get(key)
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UserError(f"{key}={value!r} is not valid: {what}")


def check_run_settings(cfg: DictConfig, trainer: bool = True) -> None:
    """Loader, thread, preprocessing and output settings of an evaluation-like task;
    ``trainer``: also ``trainer.*`` (which imports Lightning, so it comes last)."""
    _int(cfg, "batch_size", 1, "give a whole number of images per batch, >= 1", allow_none=True)
    _int(cfg, "num_workers", 0, "give 0 (decode in the main process) or more", allow_none=True)
    _int(cfg, "cpu_threads", 1, "give null (auto) or a number >= 1", allow_none=True)
    _int(cfg, "prefetch_factor", 1, "give null or a number >= 1", allow_none=True)
    if cfg.get("cpu_parallel", "batches") not in ("batches", "ops"):
        raise UserError(f"cpu_parallel must be 'batches' or 'ops', got {cfg.cpu_parallel!r}")
    dtype = str(cfg.get("predictions", {}).get("logits_dtype", "float32"))
    if dtype not in LOGITS_DTYPES:
        raise UserError(
            f"predictions.logits_dtype={dtype!r} is not supported: use float32 (exact "
            "re-scoring) or float16 (half the size)"
        )
    _int(cfg, "seed", 0, "give a whole number in 0..4294967295", allow_none=True)
    if (cfg.get("seed") or 0) > 2**32 - 1:
        raise UserError(f"seed={cfg.seed} is not valid: give a whole number in 0..4294967295")
    for key in SWITCHES:
        value = cfg.get(key)
        if value is not None and not isinstance(value, bool):
            raise UserError(f"{key}={value!r} is not valid: give true or false")
    check_preprocess(cfg.get("preprocess") or {})
    if cfg.get("data") is not None:
        check_data_roots(cfg.data)

    check_labels_option(cfg.get("labels"))
    check_logger_dirs(cfg)  # evaluate's and train's
    if trainer and cfg.get("trainer") is not None:
        check_trainer(cfg.trainer)
    if cfg.get("gallery") not in (None, False):  # what the run writes at its end
        options = gallery_options(cfg.gallery)
        if options.output_dir is not None:
            check_can_create(options.output_dir, "gallery.output_dir")
        folder = options.exemplars
        if isinstance(folder, Path) and not folder.is_dir():  # its images are read at the end
            what = "does not exist" if not folder.exists() else "is a file"
            raise UserError(
                f"gallery.exemplars={folder} {what}: point it at a folder of photos, or use "
                "gallery.exemplars=run (other photos of the run) or none"
            )
    name = cfg.get("optimized_metric")
    if name is not None and (not isinstance(name, str) or name.count(KEY_SEP) != 1):
        raise UserError(
            f"optimized_metric={name!r} is not a metric name: give <dataset>/<metric>, "
            "e.g. demo/top1"
        )


def _declares(node: DictConfig, key: str) -> bool:
    """``key`` is in ``node``, also with the missing value ``???`` (for which ``in`` is False)."""
    return key in node or OmegaConf.is_missing(node, key)


def check_data_roots(data: DictConfig) -> None:
    """Every dataset that needs a folder has one that exists (a file is not a folder), and
    a named variant (ImageNetV2's) is one there is."""

    for key, spec in dataset_specs(data).items():
        if str(spec.get("_target_", "")).endswith(".ImageNetV2Dataset"):
            check_imagenetv2_variant(spec.get("variant", "matched-frequency"))
        option = "data" if key == "data" else f"data.{key}"
        seed = spec.get("seed") if "seed" in spec else None
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise UserError(
                f"{option}.seed={seed!r} is not valid: give a whole number >= 0 (image i is "
                "drawn with seed + i)"
            )
        if not _declares(spec, "root"):
            continue
        if OmegaConf.is_missing(spec, "root") or spec.root in (None, ""):
            if OmegaConf.is_missing(spec, "root"):
                howto = spec.get("howto") or "a folder of images"
                raise UserError(f"no dataset folder given: pass {option}.root=... ({howto})")
            continue  # null: the dataset's own default (e.g. the demo photos)
        root = Path(str(spec.root)).expanduser()
        if root.exists() and not root.is_dir():
            raise UserError(
                f"{option}.root={root} is a file, not a folder: pass the folder of images"
            )
        if not root.exists():
            raise UserError(f"dataset folder {root} does not exist: check {option}.root")


def check_preprocess(pre: Mapping[str, Any]) -> None:
    """``preprocess.*`` overrides: sizes positive, crop_pct in (0, 1], known interpolation."""
    size = pre.get("img_size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise UserError(f"preprocess.img_size={size!r} must be a positive number of pixels")
    shape = pre.get("input_size")
    if shape is not None and (
        len(shape) != 3 or any(not isinstance(v, int) or v < 1 for v in shape) or shape[0] != 3
    ):
        raise UserError(f"preprocess.input_size={list(shape)!r} must be [3, height, width]")
    crop = pre.get("crop_pct")
    if crop is not None and not (isinstance(crop, (int, float)) and 0 < crop <= 1):
        raise UserError(f"preprocess.crop_pct={crop!r} must be in (0, 1]")
    crop_mode = pre.get("crop_mode")
    if crop_mode is not None and crop_mode not in CROP_MODES:
        raise UserError(
            f"preprocess.crop_mode={crop_mode!r} is unknown: use {', '.join(CROP_MODES)}"
        )
    mode = pre.get("interpolation")
    if mode is not None and mode not in (
        "bilinear",
        "bicubic",
        "nearest",
        "lanczos",
        "box",
        "hamming",
    ):
        raise UserError(
            f"preprocess.interpolation={mode!r} is unknown: use bilinear, bicubic, nearest, "
            "lanczos, box or hamming"
        )
    for key in ("mean", "std"):
        values = pre.get(key)
        if values is not None and len(values) != 3:
            raise UserError(f"preprocess.{key} needs 3 values (R, G, B), got {list(values)!r}")
    if pre.get("std") is not None and any(v <= 0 for v in pre["std"]):
        raise UserError("preprocess.std values must be positive")
    hflip = pre.get("hflip")
    if hflip is not None and not isinstance(hflip, bool):
        raise UserError(f"preprocess.hflip={hflip!r} must be true or false")


def _precisions() -> set[str]:
    """The precision values Lightning accepts (as strings), or empty if it hides them."""
    import typing

    try:
        from lightning.fabric.connector import _PRECISION_INPUT
    except ImportError:  # pragma: no cover - another Lightning version
        return set()

    def values(tp: Any) -> list[Any]:
        args = typing.get_args(tp)
        if typing.get_origin(tp) is typing.Literal:
            return list(args)
        return [v for a in args for v in values(a)]

    return {str(v) for v in values(_PRECISION_INPUT)}


def _has_accelerator(name: str) -> bool:
    from lightning.pytorch.accelerators import AcceleratorRegistry

    name = "cuda" if name == "gpu" else name
    if name not in AcceleratorRegistry:
        return False
    return bool(AcceleratorRegistry[name]["accelerator"].is_available())


def check_trainer(trainer: Mapping[str, Any]) -> None:
    """``trainer.accelerator`` exists on this machine, ``devices`` and ``precision`` are
    values Lightning takes (its own errors of them are tracebacks)."""
    accelerator = str(trainer.get("accelerator", "auto"))
    if accelerator != "auto":
        from lightning.pytorch.accelerators import AcceleratorRegistry

        known = ["gpu", *AcceleratorRegistry.available_accelerators()]
        if accelerator not in known:
            raise UserError(
                f"trainer.accelerator={accelerator!r} is unknown: use auto, cpu, gpu or "
                f"{', '.join(k for k in known if k not in ('cpu', 'gpu'))}"
            )
        if not _has_accelerator(accelerator):
            raise UserError(
                f"trainer.accelerator={accelerator} but this machine has no usable "
                f"{accelerator.upper()}: use trainer=cpu (or trainer.accelerator=auto)"
            )
    devices = trainer.get("devices", "auto")
    if isinstance(devices, str) and devices.strip().lstrip("-").isdigit():
        devices = int(devices)
    if isinstance(devices, bool) or (
        not isinstance(devices, (int, str)) and not _is_int_list(devices)
    ):
        raise UserError(f"trainer.devices={devices!r} is not valid: give a number >= 1 or auto")
    if isinstance(devices, int) and (devices == 0 or devices < -1):
        raise UserError(
            f"trainer.devices={devices} is not valid: give the number of devices (>= 1), -1 "
            "(all) or auto"
        )
    if isinstance(devices, str) and devices != "auto" and not _is_int_list(devices.split(",")):
        raise UserError(f"trainer.devices={devices!r} is not valid: give a number >= 1 or auto")
    precision = trainer.get("precision")
    allowed = _precisions()
    if precision is not None and allowed and str(precision) not in allowed:
        raise UserError(
            f"trainer.precision={precision!r} is unknown: use 32-true, 16-mixed, bf16-mixed, "
            "16-true, bf16-true or 64-true"
        )
    on_cpu = accelerator == "cpu" or (
        accelerator == "auto" and not any(_has_accelerator(a) for a in ("cuda", "mps", "tpu"))
    )
    if on_cpu and str(precision) in ("16-mixed", "16"):
        # Lightning then runs bf16-mixed, while the run records 16-mixed
        raise UserError(
            f"trainer.precision={precision} (float16 autocast) needs a GPU: on CPU use "
            "bf16-mixed or 32-true"
        )


def _is_int_list(values: Any) -> bool:
    try:
        items = list(values)
    except TypeError:
        return False
    return bool(items) and all(
        (isinstance(v, int) and not isinstance(v, bool) and v >= 0)
        or (isinstance(v, str) and v.strip().isdigit())
        for v in items
    )


def check_model(model: Mapping[str, Any]) -> None:
    """The model name resolves in timm and predicts the 1000 ImageNet-1k classes, before
    the model is created or any weights are requested."""
    # timm and the backbones module import torch: only for the model check, after the rest
    from timm.models import get_pretrained_cfg

    from imagenet_multilabel.models.backbones import check_model_name

    name = str(model.get("name"))
    check_model_name(name)
    kwargs = model.get("kwargs") or {}
    classes = kwargs.get("num_classes")
    if classes is None:
        try:
            pretrained = get_pretrained_cfg(name)
        except RuntimeError as e:  # an unknown tag
            raise ModelError(
                f"{e} Pick a tag of timm.list_pretrained('{name.split('.')[0]}*')"
            ) from None
        classes = pretrained.num_classes if pretrained is not None else NUM_CLASSES
    if classes != NUM_CLASSES:
        raise ModelError(
            f"model {name} predicts {classes} classes, but the datasets and label sets here "
            f"are ImageNet-1k ({NUM_CLASSES} classes): choose a model (or tag) trained on "
            "ImageNet-1k"
        )


def check_input_sizes(
    model: Any, preprocessing: Mapping[str, Any], datasets: Mapping[str, Any]
) -> None:
    """Every dataset's images fit the model, before the run: a timm model whose input size
    is fixed (a ViT's patch embedding without ``dynamic_img_size``) takes exactly that size,
    but composites put tiles side by side and ``preprocess.img_size`` may differ (the forward
    pass would fail with an AssertionError traceback). ``datasets``: name -> dataset; one
    with ``image_size(tile)`` says its image shape for the model's input shape."""
    embed = getattr(model, "patch_embed", None)
    fixed = getattr(embed, "img_size", None) if getattr(embed, "strict_img_size", False) else None
    if fixed is None:
        return
    fixed = tuple(int(v) for v in fixed)
    tile = tuple(int(v) for v in preprocessing["input_size"])
    for name, dataset in datasets.items():
        size = tuple(dataset.image_size(tile)) if hasattr(dataset, "image_size") else tile
        if size[1:] == fixed:
            continue
        other = (
            "data.squeeze=true (downscaled tiles)"
            if size != tile
            else "preprocess.img_size / input_size at the model's"
        )
        raise UserError(
            f"the model takes {fixed[0]}x{fixed[1]} images only, but dataset '{name}' has "
            f"{size[1]}x{size[2]}: pass model.kwargs.dynamic_img_size=true (timm ViTs), or "
            f"{other}"
        )


def check_can_create(path: str | Path, setting: str) -> None:
    """``path`` is a folder, or can be made one, that this user can write (checked without
    creating anything: its nearest existing ancestor is a writable folder)."""
    import os

    path = Path(path).expanduser().absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if existing == path and not path.is_dir():
        raise UserError(f"{setting}={path} is a file: pass a folder")
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{setting}={path} cannot be written here: choose another folder")


def check_optimized_metric_name(
    name: str | None, datasets: Mapping[str, bool], single: set[str], multi: set[str]
) -> None:
    """Before a run works: ``optimized_metric`` names one of the metrics it will write,
    given its datasets (name -> has a label set) and the metric names the heads write
    without and with a label set (Scorer.metric_names)."""
    if not name:
        return
    expected = {
        metric_key(dataset, m)
        for dataset, labelled in datasets.items()
        for m in (multi if labelled else single)
    }
    if name not in expected:
        example = next(iter(sorted(expected)), "-")
        raise SweepError(
            f"optimized_metric={name!r} is not among the metrics this run writes (e.g. {example!r})"
        )


def check_optimized_metric(metrics: Mapping[str, float], name: str | None) -> None:
    """``optimized_metric`` names one of the run's metrics (checked before results are
    written; the entry point then returns that value to Hydra's sweepers)."""
    if name and name not in metrics:
        example = next(iter(metrics), "-")
        raise SweepError(
            f"optimized_metric={name!r} is not among this run's metrics (e.g. {example!r})"
        )


# ----------------------------------------------------------------------------- train.py

SCHEDULES = ("cosine", "constant")
FLOAT32_MAX = 3.4028234663852886e38
# on/off settings of conf/train.yaml beyond SWITCHES
TRAIN_SWITCHES = (
    "drop_last",
    "composites.enabled",
    "finetune.cache_features",
    "augment.enabled",
    "early_stopping.enabled",
)
AUGMENT_INTERPOLATIONS = ("random", "bilinear", "bicubic", "nearest", "lanczos", "hamming")


def _get(cfg: Any, key: str) -> Any:
    """The value at dotted ``key`` (None where a part is missing)."""
    node = cfg
    for part in key.split("."):
        if node is None or not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _whole(cfg: Any, key: str, low: int, allow_none: bool = False, what: str = "") -> None:
    """``key`` is a whole number >= ``low`` (2.5, 'abc' and true are refused)."""
    value = _get(cfg, key)
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        hint = what or (f"give a whole number >= {low}" + (" or null" if allow_none else ""))
        kind = "negative" if isinstance(value, (int, float)) and value < 0 <= low else "not valid"
        raise UserError(f"{key}={value!r} is {kind}: {hint}")


def _real(
    cfg: Any,
    key: str,
    low: float = 0.0,
    high: float | None = None,
    *,
    allow_none: bool = False,
    open_high: bool = False,
    open_low: bool = False,
) -> float | None:
    """``key`` is a finite number in [low, high] (bounds open where asked)."""
    import math

    value = _get(cfg, key)
    if value is None and allow_none:
        return None
    lo = "(" if open_low else "["
    hi = ")" if open_high else "]"
    if high is None:
        span = f"{'>' if open_low else '>='} {low:g}"
    else:
        span = f"in {lo}{low:g}, {high:g}{hi}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        none = " or null" if allow_none else ""
        raise UserError(f"{key}={value!r} is not valid: give a finite number {span}{none}")
    bad = value < low or (open_low and value == low)
    bad |= high is not None and (value > high or (open_high and value == high))
    if bad:
        kind = "negative" if value < 0 <= low else "out of range"
        raise UserError(f"{key}={value!r} is {kind}: give a number {span}")
    return float(value)


def _choice(cfg: Any, key: str, choices: tuple[str, ...], allow_none: bool = False) -> None:
    value = _get(cfg, key)
    if value is None and allow_none:
        return
    if value not in choices:
        raise UserError(f"{key}={value!r} is unknown: use one of {', '.join(choices)}")


def check_train_settings(cfg: DictConfig) -> None:
    """Every setting of ``train.py`` that can be judged from the config alone, before torch
    is imported: types, ranges, names and combinations, each refused in one line that
    names the setting as conf/train.yaml spells it. What needs the data or the model
    (the training set's size, the optimizer's name in timm) is checked by
    :func:`check_train_parts` before the first forward pass."""
    check_run_settings(cfg, trainer=False)
    precision = str(_get(cfg, "trainer.precision"))
    if precision.startswith("16") and str(_get(cfg, "trainer.accelerator")) == "cpu":
        raise UserError(f"precision={precision} needs a GPU: use bf16-mixed or 32-true on CPU")
    for key in TRAIN_SWITCHES:
        value = _get(cfg, key)
        if value is not None and not isinstance(value, bool):
            raise UserError(f"{key}={value!r} is not valid: give true or false")
    _whole(cfg, "train_batch_size", 1, what="give a whole number of images per step, >= 1")
    _choice(cfg, "final_eval", ("images", "features"))
    _choice(cfg, "finetune.mode", FINETUNE_MODES)
    _whole(cfg, "finetune.last_n", 1, what="give a whole number of stages, >= 1")
    if cfg.final_eval == "features" and not (
        cfg.finetune.mode == "head" and cfg.finetune.cache_features
    ):
        raise UserError("final_eval=features needs finetune.mode=head with cached features")
    # split
    _whole(cfg, "split.seed", 0)
    _real(cfg, "split.heldout_fraction", 0.0, 1.0, open_high=True)
    _whole(cfg, "split.heldout_classes", 0, what="give the number of classes kept out, >= 0")
    # composites
    if _get(cfg, "composites.enabled"):
        for key in ("composites.rows", "composites.cols"):
            _whole(cfg, key, 1, what="give a whole number of tiles, >= 1")
        tiles = int(cfg.composites.rows) * int(cfg.composites.cols)
        if not 2 <= tiles <= 4:
            raise UserError(
                f"composites.rows={cfg.composites.rows} composites.cols={cfg.composites.cols} "
                f"makes {tiles} tiles: a composite has 2 to 4 (e.g. rows=1 cols=2, rows=2 "
                "cols=2), or set composites.enabled=false"
            )
        for key in ("composites.train_images", "composites.eval_images"):
            _whole(cfg, key, 1, what="give a whole number of composites, >= 1")
        _whole(cfg, "composites.seed", 0)
    check_loss_settings(cfg)
    check_optim_settings(cfg)
    check_fit_settings(cfg)
    # regularize / augment
    _real(cfg, "regularize.l2_to_pretrained", 0.0)
    _choice(cfg, "regularize.train_rows", ("all", "seen"))
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
    check_trainer(cfg.trainer)  # last: it imports Lightning (and torch)
    check_optimizer_name(cfg)


def check_optimizer_name(cfg: DictConfig) -> None:
    """``optim.opt`` is one of timm's optimizers (imports timm: after everything else)."""
    from timm.optim import list_optimizers

    opt = str(cfg.optim.opt).lower()
    known = list_optimizers()
    if opt not in known and opt.split("_")[-1] not in known:
        close = [n for n in known if n.startswith(opt[:3])][:6]
        raise UserError(
            f"optim.opt={cfg.optim.opt!r} is not an optimizer of timm: use e.g. "
            f"{', '.join(close or ['adam', 'adamw', 'sgd'])} (timm.optim.list_optimizers())"
        )


def check_loss_settings(cfg: DictConfig) -> None:
    keep = _get(cfg, "loss.keep_unseen")
    if keep is not None:
        _real(cfg, "loss.keep_unseen", 0.0, 1.0)
    if keep and cfg.finetune.mode != "head":
        raise UserError(
            f"loss.keep_unseen needs finetune.mode=head (the pretrained logits of the frozen "
            f"backbone): for finetune.mode={cfg.finetune.mode} use loss=soft_ce or another loss"
        )
    for key in ("gamma_neg", "gamma_pos", "clip", "smoothing"):
        if _get(cfg, f"loss.{key}") is not None:
            _real(cfg, f"loss.{key}", 0.0, 1.0 if key in ("clip", "smoothing") else None)


def check_optim_settings(cfg: DictConfig) -> None:
    """``optim.*`` and ``sched.*`` ranges (the optimizer's name is timm's: checked in
    :func:`check_train_parts`)."""
    opt = _get(cfg, "optim.opt")
    if not isinstance(opt, str) or not opt:
        raise UserError(f"optim.opt={opt!r} is not valid: give an optimizer name of timm")
    if (_real(cfg, "optim.lr", 0.0) or 0.0) > FLOAT32_MAX:
        raise UserError(
            f"optim.lr={cfg.optim.lr!r} is beyond float32 (the optimizers' parameters): give "
            "a learning rate such as 1e-3"
        )
    for key in ("weight_decay", "momentum"):
        if _get(cfg, f"optim.{key}") is not None:
            _real(cfg, f"optim.{key}", 0.0)
    _real(cfg, "optim.layer_decay", 0.0, 1.0, allow_none=True, open_low=True)
    _choice(cfg, "sched.name", SCHEDULES)
    if cfg.sched.name == "cosine":
        _whole(cfg, "sched.warmup_steps", 0, allow_none=True)
        _real(cfg, "sched.warmup_lr_init", 0.0, allow_none=True)
        _real(cfg, "sched.lr_min", 0.0, allow_none=True)
        _whole(cfg, "sched.total_steps", 1, allow_none=True)
        total = _get(cfg, "sched.total_steps")
        warmup = _get(cfg, "sched.warmup_steps") or 0
        if total is not None and warmup >= total:
            raise UserError(
                f"sched.warmup_steps={warmup} is not less than sched.total_steps={total}: "
                "lower the warmup"
            )


def lr_warning(cfg: DictConfig) -> str | None:
    """The line warning of a legal but surely unintended learning rate (0: nothing trains)."""
    if _get(cfg, "optim.lr") == 0:
        return (
            "optim.lr=0: the weights will not change, so every fine-tuned metric equals the "
            "pretrained one (deltas 0); give a positive optim.lr to fine-tune"
        )
    return None


def check_fit_settings(cfg: DictConfig) -> None:
    """``trainer.*`` lengths, ``validate_on``, ``checkpoint.*`` and ``early_stopping.*``."""
    _whole(cfg, "trainer.max_epochs", -1, allow_none=True)
    _whole(cfg, "trainer.max_steps", -1, allow_none=True)
    epochs, steps = _get(cfg, "trainer.max_epochs"), _get(cfg, "trainer.max_steps")
    if epochs == 0 or steps == 0:
        key = "trainer.max_epochs" if epochs == 0 else "trainer.max_steps"
        raise UserError(f"{key}=0 trains nothing: give at least 1 (-1: no limit)")
    if (epochs in (None, -1)) and (steps in (None, -1)):
        raise UserError(
            "trainer.max_epochs and trainer.max_steps are both unlimited: the run would never "
            "end; give one of them"
        )
    _whole(cfg, "trainer.check_val_every_n_epoch", 1, allow_none=True)
    interval = _get(cfg, "trainer.val_check_interval")
    if interval is not None:
        _real(cfg, "trainer.val_check_interval", 0.0, open_low=True)
    _whole(cfg, "trainer.log_every_n_steps", 1, allow_none=True)
    _whole(cfg, "trainer.num_sanity_val_steps", -1, allow_none=True)
    _whole(cfg, "trainer.accumulate_grad_batches", 1, allow_none=True)
    _real(cfg, "trainer.gradient_clip_val", 0.0, allow_none=True)
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
    _choice(cfg, "checkpoint.mode", ("max", "min"))
    _whole(cfg, "checkpoint.every_n_steps", 1, allow_none=True)
    monitor = _get(cfg, "checkpoint.monitor")
    if monitor not in (None, "auto") and not isinstance(monitor, str):
        raise UserError(f"checkpoint.monitor={monitor!r} is not valid: give <set>/<metric>")
    if isinstance(monitor, str) and monitor not in ("auto", "none", "null"):
        name = split_metric_key(monitor)[0]
        if not is_metric_key(monitor) or name not in validate_on:
            raise UserError(
                f"checkpoint.monitor={monitor!r} is not '<set>/<metric>' of a validated set "
                f"(validate_on: {', '.join(validate_on) or 'none'})"
            )
    validated = (
        bool(validate_on)
        and epochs not in (None, -1)
        and ((_get(cfg, "trainer.check_val_every_n_epoch") or 1) <= epochs)
    )
    monitored = isinstance(monitor, str) and is_metric_key(monitor)
    if monitored and epochs not in (None, -1) and not validated:
        raise UserError(
            f"checkpoint.monitor={monitor} needs validation, but trainer.check_val_every_n_epoch"
            f"={cfg.trainer.check_val_every_n_epoch} > trainer.max_epochs={epochs}: no "
            "validation would run; lower the interval or set checkpoint.monitor=null"
        )
    if _get(cfg, "early_stopping.enabled"):
        _whole(cfg, "early_stopping.patience", 0)
        _real(cfg, "early_stopping.min_delta", 0.0)
        if monitor in (None, "none", "null"):
            raise UserError("early_stopping needs a metric: set checkpoint.monitor=<set>/<metric>")
        if not validate_on:
            raise UserError("early_stopping needs validation: give validate_on a set")


def check_augment(cfg: DictConfig) -> None:
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
                f"augment.{key}={_plain(values)!r} is not valid: give [low, high], low <= high, "
                f"both {span}"
            )
    _real(cfg, "augment.hflip", 0.0, 1.0, allow_none=True)
    _real(cfg, "augment.color_jitter", 0.0, allow_none=True)
    _choice(cfg, "augment.interpolation", AUGMENT_INTERPOLATIONS, allow_none=True)
    auto = node.get("auto_augment")
    if auto is not None and not (
        isinstance(auto, str) and auto.split("-")[0] in ("rand", "augmix", "original", "v0", "3a")
    ):
        raise UserError(
            f"augment.auto_augment={auto!r} is not valid: give null or a timm policy "
            "(e.g. rand-m9-mstd0.5, augmix-m5, original, v0, 3a)"
        )


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value) if isinstance(value, (DictConfig, ListConfig)) else value


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


def check_logger_dirs(cfg: DictConfig) -> None:
    """A logger's folder inside the run folder is not a file (W&B writes <run>/wandb)."""
    out = _get(cfg, "paths.output_dir")
    loggers = cfg.get("logger") or {}
    if not out:
        return
    for name in loggers:
        sub = {"wandb": "wandb", "csv": "csv"}.get(str(name))
        if sub and (Path(str(out)) / sub).is_file():
            raise UserError(
                f"logger={name}: {Path(str(out)) / sub} is a file, but the logger writes a "
                "folder there: remove the file or choose another hydra.run.dir"
            )


def check_train_parts(
    cfg: DictConfig, train_size: int, set_names: list[str], metric_names: dict[str, list[str]]
) -> None:
    """What needs the data, before the first forward pass: a batch the training set can
    fill with ``drop_last``, the monitored and the optimized
    metric among the run's (``metric_names``: set -> its metrics)."""
    batch = int(cfg.train_batch_size)
    if cfg.drop_last and batch > train_size:
        raise UserError(
            f"train_batch_size={batch} is larger than the {train_size} training images and "
            "drop_last=true drops every batch: lower train_batch_size or set drop_last=false"
        )
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
