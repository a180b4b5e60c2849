"""Preprocessing resolved from the model, as timm does: command-line value first, then the
model's pretrained config, then timm's defaults."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from timm.data import create_transform, resolve_data_config


def resolve_preprocessing(
    model: torch.nn.Module, overrides: Mapping[str, Any] | None = None
) -> dict:
    """The eval data config of ``model`` with user ``overrides`` applied.

    ``overrides`` keys (None = take the model's): ``img_size`` (int), ``input_size``
    ([C, H, W]), ``crop_pct``, ``crop_mode``, ``interpolation``, ``mean``, ``std``.
    Returns a plain dict with ``input_size`` (tuple), ``interpolation``, ``crop_pct``,
    ``crop_mode``, ``mean``, ``std`` (tuples) — the values recorded beside every result.
    """
    args = {k: v for k, v in dict(overrides or {}).items() if v is not None}
    if "mean" in args:
        args["mean"] = tuple(float(x) for x in args["mean"])
    if "std" in args:
        args["std"] = tuple(float(x) for x in args["std"])
    config = resolve_data_config(args=args, model=model, use_test_size=False)
    return {
        "input_size": tuple(int(x) for x in config["input_size"]),
        "interpolation": str(config["interpolation"]),
        "crop_pct": float(config["crop_pct"]),
        "crop_mode": str(config.get("crop_mode", "center")),
        "mean": tuple(float(x) for x in config["mean"]),
        "std": tuple(float(x) for x in config["std"]),
    }


def eval_transform(preprocessing: Mapping[str, Any]):
    """timm's eval transform (resize shorter side to size / crop_pct, center crop, normalise)."""
    return create_transform(**dict(preprocessing), is_training=False)
