"""ImageNet-C (Hendrycks & Dietterich 2019): corrupted copies of ImageNet val.

Two sources, one config (``data=imagenet_c``):

- on the fly (default): any dataset of image files (ILSVRC2012 val by default) is wrapped
  by :class:`CorruptedDataset`. As ImageNet-C was made, each image is resized (shorter
  side 256, bilinear) and centre-cropped to 224 x 224, corrupted (:mod:`.corruptions`),
  then given to the model's own preprocessing, exactly as a released 224 x 224 file is;
- the released files (``prepared=true``): folders ``<corruption>/<severity>/<wnid>/``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from imagenet_multilabel.core.errors import DataError
from imagenet_multilabel.data.datasets.class_subsets import ClassSubsetSpec
from imagenet_multilabel.data.datasets.corruptions import (
    CORRUPTIONS,
    FAMILIES,
    check_corruption,
    check_implementation,
    corrupt,
)
from imagenet_multilabel.data.datasets.folders import (
    ImageDataset,
    ImageNetADataset,
    ImageNetRDataset,
    ImageNetSketchDataset,
    ImageNetV2Dataset,
    ImageNetValDataset,
    WnidFilesDataset,
    WnidFolderDataset,
    _require_dir,
)
from imagenet_multilabel.data.images import load_rgb

# The release: archive (zenodo.org/records/2235448) -> the corruptions it holds.
RELEASED = {
    **FAMILIES,
    "extra": ("speckle_noise", "spatter", "gaussian_blur", "saturate"),
}
RELEASED_CORRUPTIONS = tuple(c for group in RELEASED.values() for c in group)

RESIZE, CROP = 256, 224

# data.base options: datasets of image files that can be corrupted on the fly
BASES: Mapping[str, type[ImageDataset]] = {
    "imagenet": ImageNetValDataset,
    "folder": WnidFolderDataset,
    "demo": WnidFilesDataset,
    "imagenetv2": ImageNetV2Dataset,
    "imagenet_a": ImageNetADataset,
    "imagenet_r": ImageNetRDataset,
    "imagenet_sketch": ImageNetSketchDataset,
}


def archive_of(corruption: str) -> str:
    """The release archive that holds ``corruption``."""
    return next(a for a, group in RELEASED.items() if corruption in group)


def center_crop(image: Image.Image, resize: int = RESIZE, size: int = CROP) -> Image.Image:
    """Shorter side to ``resize`` (bilinear), then the central ``size x size`` crop, as
    torchvision's ``Resize(256)`` + ``CenterCrop(224)`` that made ImageNet-C."""
    w, h = image.size
    if w <= h:
        new = (resize, max(size, int(resize * h / w)))
    else:
        new = (max(size, int(resize * w / h)), resize)
    image = image.resize(new, Image.Resampling.BILINEAR)
    left = round((new[0] - size) / 2.0)
    top = round((new[1] - size) / 2.0)
    return image.crop((left, top, left + size, top + size))


class CorruptedDataset(ImageDataset):
    """``base`` with a corruption applied to the 224 x 224 centre crop of each image.

    Deterministic: image ``i`` draws its noise from ``numpy.random.default_rng(seed + i)``,
    whatever the worker or the order (``implementation="corrupt_tta"``: corrupt-tta's
    functions, numpy's global state seeded with ``seed + i``). Files, targets, the default
    label set and the class subset are the base's (a corrupted val image keeps its ReaL
    labels).
    """

    def __init__(
        self,
        base: ImageDataset,
        corruption: str,
        severity: int,
        seed: int = 0,
        transform=None,
        name: str | None = None,
        implementation: str = "ours",
    ) -> None:
        check_corruption(corruption, severity)
        check_implementation(implementation, corruption)
        if type(base).__getitem__ is not ImageDataset.__getitem__:
            raise DataError(
                f"cannot corrupt {base.name}: it does not read one image file per item; "
                "use a dataset of image files as data.base"
            )
        self.base, self.corruption, self.severity, self.seed = base, corruption, severity, seed
        self.implementation = implementation
        self.default_labels = base.default_labels
        name = name or f"imagenet_c-{corruption}-{severity}"
        super().__init__(base.root, base.files, base.targets, transform, name)
        self.class_subset = base.class_subset

    def __getitem__(self, index: int) -> dict[str, Any]:
        crop = np.asarray(center_crop(load_rgb(self.root / self.files[index])))
        corrupted = corrupt(
            crop, self.corruption, self.severity, self.seed + index, self.implementation
        )
        image = Image.fromarray(corrupted)
        if self.transform is not None:
            image = self.transform(image)
        return {"image": image, "target": self.targets[index], "index": index}


class ImageNetCFolderDataset(WnidFolderDataset):
    """One corruption and severity of the released ImageNet-C: ``root/<corruption>/
    <severity>/<wnid>/ILSVRC2012_val_XXXXXXXX.JPEG``. The files keep their val names, so
    the default label set is ReaL."""

    name = "imagenet_c"
    default_labels: str | None = "real"


def _released_folder(root: Path, corruption: str, severity: int) -> Path:
    for folder in (root / corruption / str(severity), root / str(severity)):
        if folder.is_dir() and (folder.parent.name == corruption):
            return folder
    have = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name in RELEASED_CORRUPTIONS)
    found = f"it has {', '.join(have)}" if have else "it holds no ImageNet-C corruption folder"
    raise DataError(
        f"{root} has no {corruption}/{severity}/ folder ({found}): get it with python -m "
        f"imagenet_multilabel prepare imagenet_c --root {root} --set {archive_of(corruption)}"
    )


def _base_dataset(
    base: str | ImageDataset,
    root: str | Path | None,
    devkit: str | Path | None,
    labels_file: str | Path | None,
    class_subset: ClassSubsetSpec,
) -> ImageDataset:
    if isinstance(base, ImageDataset):
        if root is not None or class_subset is not None:
            raise DataError(
                "data.root and data.class_subset are not used when data.base is a dataset "
                "config: set them inside data.base"
            )
        return base
    if base not in BASES:
        raise DataError(
            f"unknown data.base {base!r}: use one of {', '.join(BASES)}, or a dataset config"
        )
    if base == "imagenet":
        if root is None:
            raise DataError(
                "data=imagenet_c corrupts ILSVRC2012 val on the fly: pass data.root=/path/to/val "
                "(python -m imagenet_multilabel prepare imagenet says how to get it), or "
                "data.base=demo for the demo photos, or data.prepared=true "
                "data.root=/path/to/ImageNet-C for the released files"
            )
        return ImageNetValDataset(
            root, devkit=devkit, labels_file=labels_file, class_subset=class_subset
        )
    if devkit is not None or labels_file is not None:
        raise DataError("data.devkit and data.labels_file are for data.base=imagenet only")
    return BASES[base](root, class_subset=class_subset)


def imagenet_c(
    root: str | Path | None = None,
    corruption: str = "gaussian_noise",
    severity: int = 3,
    prepared: bool = False,
    base: str | ImageDataset = "imagenet",
    seed: int = 0,
    devkit: str | Path | None = None,
    labels_file: str | Path | None = None,
    class_subset: ClassSubsetSpec = None,
    transform=None,
    name: str | None = None,
    implementation: str = "ours",
) -> ImageDataset:
    """The dataset of ``data=imagenet_c``: one corruption at one severity.

    Args:
        root: on the fly, the base dataset's folder (ILSVRC2012 val for ``base=imagenet``);
            with ``prepared``, the ImageNet-C folder holding ``<corruption>/<severity>/``.
        corruption, severity: which corruption, 1..5. On the fly: one of
            :data:`.corruptions.CORRUPTIONS` (ImageNet-C's 15, speckle noise and Gaussian
            blur; seven need the extra ``imagenet_c``); prepared: any of the 19 released.
        prepared: read the released files instead of corrupting on the fly.
        base: on the fly, the dataset to corrupt: a name of :data:`BASES` or a dataset
            (a ``data.base`` config with its own ``_target_``).
        seed: image ``i`` is corrupted with random draws seeded by ``seed + i``.
        devkit, labels_file: for ``base=imagenet`` in the flat layout.
        class_subset: the classes to score on (see :mod:`.class_subsets`).
        implementation: on the fly, ``ours`` (:mod:`.corruptions`) or ``corrupt_tta``
            (the corrupt-tta package's functions, for comparison).
    """
    name = name or f"imagenet_c-{corruption}-{severity}"
    if prepared:
        check_corruption(corruption, severity, RELEASED_CORRUPTIONS)
        if isinstance(base, ImageDataset):
            raise DataError("data.base is for corruptions applied on the fly, not prepared=true")
        folder = _released_folder(_require_dir(root, "data=imagenet_c"), corruption, severity)
        ds = ImageNetCFolderDataset(folder, transform, name, class_subset)
        ds.corruption, ds.severity = corruption, severity
        return ds
    if corruption not in CORRUPTIONS and corruption in RELEASED_CORRUPTIONS:
        raise DataError(
            f"{corruption} is not implemented on the fly (available: {', '.join(CORRUPTIONS)}): "
            "use the released files with data.prepared=true data.root=/path/to/ImageNet-C"
        )
    check_corruption(corruption, severity)
    check_implementation(implementation, corruption)  # before the base is listed
    dataset = _base_dataset(base, root, devkit, labels_file, class_subset)
    return CorruptedDataset(dataset, corruption, severity, seed, transform, name, implementation)
