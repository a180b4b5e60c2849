"""Checks of the data settings before anything is read: every dataset's folder (and a
named variant, ImageNetV2's) and the ``preprocess.*`` overrides. The ``labels`` option's
check is beside the label files (``data/labels/files.py``). Imports no torch."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from imagenet_multilabel.core.config import dataset_specs
from imagenet_multilabel.core.errors import UserError
from imagenet_multilabel.data.datasets.variants import check_imagenetv2_variant

CROP_MODES = ("center", "squash", "border")  # timm's eval transform


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
