"""Checks a task runs before anything slow (model creation, weight requests, dataset
scans): config values, the model's name and class count, the output folder. Each failure
is one :class:`~.errors.UserError` line that says what to change."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from .errors import ModelError, UserError

LOGITS_DTYPES = ("float32", "float16")


def _int(cfg: Mapping[str, Any], key: str, low: int, what: str, allow_none: bool = False) -> None:
    value = cfg.get(key)
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UserError(f"{key}={value!r} is not valid: {what}")


def check_run_settings(cfg: DictConfig) -> None:
    """Loader, thread, preprocessing and output settings of an evaluation-like task."""
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
    check_preprocess(cfg.get("preprocess") or {})
    if cfg.get("data") is not None:
        check_data_roots(cfg.data)
    labels = cfg.get("labels")
    # the label sets without a default file (real and multilabelfy have one)
    if labels and _declares(labels, "path") and OmegaConf.is_missing(labels, "path"):
        raise UserError(f"labels={labels.get('name')} needs its file: pass labels.path=...")


def _declares(node: DictConfig, key: str) -> bool:
    """``key`` is in ``node``, also with the missing value ``???`` (for which ``in`` is False)."""
    return key in node or OmegaConf.is_missing(node, key)


def check_data_roots(data: DictConfig) -> None:
    """Every dataset that needs a folder has one that exists (a file is not a folder)."""
    from .config import dataset_specs

    for key, spec in dataset_specs(data).items():
        if not _declares(spec, "root"):
            continue
        option = "data" if key == "data" else f"data.{key}"
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


def check_model(model: Mapping[str, Any]) -> None:
    """The model name resolves in timm and predicts the 1000 ImageNet-1k classes, before
    the model is created or any weights are requested."""
    from timm.models import get_pretrained_cfg

    from .classes import NUM_CLASSES
    from .models.backbones import check_model_name

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


def check_output_dir(path: str | Path) -> Path:
    """The run folder exists and can be written (before any work is done)."""
    import os
    import tempfile

    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UserError(
            f"cannot write the run folder {path} ({e.strerror}): choose another with "
            "hydra.run.dir=..."
        ) from None
    return path
