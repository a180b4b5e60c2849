"""Preprocessing resolved from the model, as timm does: command-line value first, then the
model's pretrained config, then timm's defaults."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from timm.data import create_transform, resolve_data_config
from torchvision import transforms


def resolve_preprocessing(
    model: torch.nn.Module, overrides: Mapping[str, Any] | None = None
) -> dict:
    """The eval data config of ``model`` with user ``overrides`` applied.

    ``overrides`` keys (None = take the model's): ``img_size`` (int), ``input_size``
    ([C, H, W]), ``crop_pct``, ``crop_mode``, ``interpolation``, ``mean``, ``std``,
    ``hflip`` (default False: mirror every image left-right, a test-time view) and
    ``use_test_size`` (default True): a model whose pretrained config has a test-time input
    size and crop (``test_input_size``, ``test_crop_pct``, e.g. resnet50.a1_in1k: 288 px,
    crop 1.0) is evaluated at them, as timm's validate.py does by default and as timm's
    published results are; False takes the training size.
    Returns a plain dict with ``input_size`` (tuple), ``interpolation``, ``crop_pct``,
    ``crop_mode``, ``mean``, ``std`` (tuples), ``use_test_size`` and ``hflip`` — the values
    recorded beside every result.
    """
    args = {k: v for k, v in dict(overrides or {}).items() if v is not None}
    use_test_size = bool(args.pop("use_test_size", True))
    hflip = bool(args.pop("hflip", False))
    if "mean" in args:
        args["mean"] = tuple(float(x) for x in args["mean"])
    if "std" in args:
        args["std"] = tuple(float(x) for x in args["std"])
    config = resolve_data_config(args=args, model=model, use_test_size=use_test_size)
    return {
        "input_size": tuple(int(x) for x in config["input_size"]),
        "interpolation": str(config["interpolation"]),
        "crop_pct": float(config["crop_pct"]),
        "crop_mode": str(config.get("crop_mode", "center")),
        "mean": tuple(float(x) for x in config["mean"]),
        "std": tuple(float(x) for x in config["std"]),
        "use_test_size": use_test_size,
        "hflip": hflip,
    }


def eval_transform(preprocessing: Mapping[str, Any], normalize: bool = True):
    """timm's eval transform (resize shorter side to size / crop_pct, center crop, normalise).

    ``normalize=False`` stops after the crop with a uint8 ``[C, H, W]`` tensor: the rest
    (:class:`Normalize`) then runs once per batch, on the device.
    """
    args = {k: v for k, v in preprocessing.items() if k not in ("use_test_size", "hflip")}
    transform = create_transform(**args, is_training=False, normalize=normalize)
    if preprocessing.get("hflip"):
        transform = transforms.Compose([transform, transforms.RandomHorizontalFlip(p=1.0)])
    return transform


class Normalize(torch.nn.Module):
    """uint8 image batches ``[N, C, H, W]`` -> normalised float32 in the same memory format;
    the same floating-point operations, in the same order, as timm's per-image
    ``ToTensor`` + ``Normalize``, so the values are bitwise identical on CPU."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.mean, self.std = tuple(mean), tuple(std)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8:
            raise TypeError(f"expected uint8 images, got {images.dtype}")
        out = images.to(torch.float32).div_(255)
        # mean and std as whole [1, C, H, W] planes laid out as the images (empty_like keeps
        # the strides), broadcast over the batch only: broadcast from [1, C, 1, 1], a
        # channels-last batch runs an inner loop of length C (3) per pixel, 4x slower
        return out.sub_(self._plane(self.mean, out)).div_(self._plane(self.std, out))

    @staticmethod
    def _plane(values: Sequence[float], like: torch.Tensor) -> torch.Tensor:
        column = torch.tensor(values, dtype=like.dtype, device=like.device).view(1, -1, 1, 1)
        return torch.empty_like(like[:1]).copy_(column.expand_as(like[:1]))

    def extra_repr(self) -> str:
        return f"mean={self.mean}, std={self.std}"
