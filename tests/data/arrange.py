"""Real photos arranged as the ImageNet-A/R layouts (wnid folders) in a tmp folder: from
the package's 100 demo photos (always there) or from ../shared/data/imagenet-sample (one
photo per class, when present)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from imagenet_multilabel.data.datasets.class_subsets import official_wnids
from imagenet_multilabel.data.datasets.folders import DEMO_ROOT
from tests.helpers import SAMPLE


def photos_by_wnid(folder: Path) -> dict[str, Path]:
    """``<wnid>_<name>.JPEG`` files of ``folder`` by wnid."""
    return {p.name.split("_", 1)[0]: p for p in sorted(folder.glob("n*_*.JPEG"))}


def arrange(root: Path, photos: dict[str, Path], wnids: Iterable[str]) -> Path:
    """``root/<wnid>/<photo>`` symlinks for each of ``wnids`` that has a photo."""
    for wnid in wnids:
        if wnid in photos:
            (root / wnid).mkdir(parents=True, exist_ok=True)
            (root / wnid / photos[wnid].name).symlink_to(photos[wnid])
    return root


def demo_arrangement(root: Path, subset: str = "imagenet_a") -> Path:
    """The demo photos of the classes of ``subset`` (23 for ImageNet-A, 17 for -R)."""
    return arrange(root, photos_by_wnid(DEMO_ROOT), official_wnids(subset))


def sample_available() -> bool:
    return len(photos_by_wnid(SAMPLE)) == 1000 if SAMPLE.is_dir() else False


def sample_arrangement(root: Path, subset: str = "imagenet_a") -> Path:
    """One real photo of each of the 200 classes of ``subset``, from imagenet-sample."""
    return arrange(root, photos_by_wnid(SAMPLE), official_wnids(subset))
