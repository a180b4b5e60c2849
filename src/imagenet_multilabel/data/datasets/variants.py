"""Named variants of a dataset that a config chooses from (no torch: preflight reads them
before anything heavy is imported)."""

from __future__ import annotations

from imagenet_multilabel.core.errors import DataError

# data.variant of data=imagenetv2 -> the folder its archive extracts to
IMAGENETV2_VARIANTS = {
    "matched-frequency": "imagenetv2-matched-frequency-format-val",
    "threshold0.7": "imagenetv2-threshold0.7-format-val",
    "top-images": "imagenetv2-top-images-format-val",
}


def check_imagenetv2_variant(variant: str) -> None:
    if variant not in IMAGENETV2_VARIANTS:
        raise DataError(
            f"unknown ImageNetV2 variant {variant!r}: use data.variant= one of "
            f"{', '.join(IMAGENETV2_VARIANTS)}"
        )
