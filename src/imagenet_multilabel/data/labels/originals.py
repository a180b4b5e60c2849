"""The original (single) ImageNet label of val images, where the package knows it without
the photos: the 6,761 images of Tsipras et al.'s study, whose released frame records it
(``assets/labels/tsipras/imagenet_labels.csv``, made by ``scripts/build_tsipras_labels.py``).
A dataset's own targets are the other source (``stats data=...``)."""

from __future__ import annotations

from functools import cache

from imagenet_multilabel.core.config import ASSETS
from imagenet_multilabel.data.labels.files import read_label_table

ORIGINALS = ASSETS / "labels" / "tsipras" / "imagenet_labels.csv"


@cache
def original_labels() -> dict[str, int]:
    """Val file name -> original ImageNet class index, for the images shipped."""
    return {name: labels[0] for name, labels in read_label_table(ORIGINALS).items()}
