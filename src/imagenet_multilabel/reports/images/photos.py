"""A run's photos on disk (:class:`ImageLocator`: moved photos found again) and the class
of each tile of a composite (its first tile's is the composite's original label, the others'
come from their names or the valid set): what the gallery and propose's review page show."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from imagenet_multilabel.core.classes import wnid_to_index
from imagenet_multilabel.core.errors import DataError

# the dataset classes (run.json's ``class``) whose images are composites: data/datasets/
# composites.CompositeDataset and its subclasses (train.py's training/data.NewComposites)
COMPOSITE_CLASSES = ("CompositeDataset", "NewComposites")


def is_composite_class(dataset_class: str | None) -> bool:
    """Whether a run's dataset of this class (run.json) holds composites."""
    return dataset_class in COMPOSITE_CLASSES


class ImageLocator:
    """Finds a run's photos: ``<root>/<path>``, and with ``image_root`` (photos moved)
    ``<image_root>/<path>`` then ``<image_root>/<file name>``."""

    def __init__(self, root: str | Path | None, image_root: Path | None = None) -> None:
        if image_root is not None and not image_root.is_dir():
            raise DataError(
                f"gallery.image_root={image_root} is not a folder: point it at the run's photos"
            )
        self.roots = [image_root] if image_root is not None else []
        if root and image_root is None:
            self.roots.append(Path(root))

    def find(self, path: str) -> Path | None:
        rel = Path(path)
        candidates = [r / rel for r in self.roots] + [r / rel.name for r in self.roots]
        if rel.is_absolute():
            candidates.insert(0, rel)
        return next((p for p in candidates if p.is_file()), None)


def is_composite(paths: np.ndarray, dataset_class: str | None) -> bool:
    """Rows name several photos joined by ``+`` (see data/datasets/composites.py)."""
    if dataset_class is not None:
        return is_composite_class(dataset_class)
    return len(paths) > 0 and all("+" in str(p) for p in paths[:100])


def _class_of_name(file: str) -> int | None:
    """The class a file's name or folder states (``n01440764_x.JPEG``, ``n01440764/x.JPEG``)."""
    parts = file.split("/")
    for part in (parts[-1].split("_", 1)[0], *(parts[-2:-1])):
        if part in wnid_to_index():
            return wnid_to_index()[part]
    return None


def tile_classes(paths: np.ndarray, target: np.ndarray) -> dict[str, int]:
    """Class of every tile that is some composite's first tile (a composite's original
    label is its first tile's: see data/datasets/composites.py)."""
    return {str(p).split("+", 1)[0]: int(t) for p, t in zip(paths, target, strict=True)}


def tile_labels(
    files: list[str], target: int, valid: tuple[int, ...] | None, known: dict[str, int]
) -> list[int | None]:
    """The class of each tile of one composite (None where unknown)."""
    labels: list[int | None] = [target] + [known.get(f, _class_of_name(f)) for f in files[1:]]
    left = set(valid or ()) - {x for x in labels if x is not None}
    if labels.count(None) == 1 and len(left) == 1:  # the one tile the union leaves
        labels[labels.index(None)] = left.pop()
    return labels


def labeled_tiles(data: dict[str, np.ndarray]) -> dict[str, int]:
    """Class of every tile of a composite dataset whose class is known: first tiles by the
    original label, the others by name or as the one class the valid set leaves."""
    known = tile_classes(data["path"], data["target"])
    valid_all = data.get("valid")
    out = dict(known)
    for i, path in enumerate(data["path"]):
        files = str(path).split("+")
        valid = tuple(np.flatnonzero(valid_all[i]).tolist()) if valid_all is not None else None
        labels = tile_labels(files, int(data["target"][i]), valid, known)
        for file, label in zip(files, labels, strict=True):
            if label is not None:
                out.setdefault(file, label)
    return out
