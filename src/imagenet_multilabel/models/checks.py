"""Checks of the model before it is created (its name in timm, its class count) and of
its input size against every dataset's images, before the first forward pass."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from timm.models import get_pretrained_cfg

from imagenet_multilabel.core.classes import NUM_CLASSES
from imagenet_multilabel.core.errors import ModelError, UserError
from imagenet_multilabel.models.backbones import check_model_name


def check_model(model: Mapping[str, Any]) -> None:
    """The model name resolves in timm and predicts the 1000 ImageNet-1k classes, before
    the model is created or any weights are requested."""
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
