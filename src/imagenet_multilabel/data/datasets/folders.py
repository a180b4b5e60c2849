"""Image datasets: each lists its files (relative names, the join key of label sets) and
the original single label of every image, in a fixed, documented order.

Every dataset here is a map-style ``torch.utils.data.Dataset`` whose items are dicts
``{"image": Tensor, "target": int, "index": int}``; the index is the position in
:attr:`ImageDataset.files`, which the evaluation uses to put per-image results back into
dataset order.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image
from torch.utils.data import Dataset

from imagenet_multilabel.core.classes import is_wnid, wnid_to_index
from imagenet_multilabel.core.config import ASSETS as PACKAGE_ASSETS
from imagenet_multilabel.core.errors import DataError
from imagenet_multilabel.data.datasets.class_subsets import (
    ClassSubsetSpec,
    check_targets_in_subset,
    compare_with_official,
    parse_class_subset,
)
from imagenet_multilabel.data.datasets.devkit import DEVKIT_DIR, devkit_dir, devkit_wnids
from imagenet_multilabel.data.datasets.variants import IMAGENETV2_VARIANTS, check_imagenetv2_variant
from imagenet_multilabel.data.images import image_files, is_image, list_images, load_rgb
from imagenet_multilabel.data.labels.files import read_label_table

DEMO_ROOT = PACKAGE_ASSETS / "demo"
log = logging.getLogger(__name__)


def _require_dir(root: str | Path | None, what: str) -> Path:
    if root is None or str(root) in ("", "???"):
        raise DataError(f"no dataset folder given for {what}: pass data.root=/path/to/images")
    path = Path(root).expanduser()
    if path.exists() and not path.is_dir():
        raise DataError(f"data.root {path} is a file, not a folder: pass the folder of images")
    if not path.is_dir():
        raise DataError(f"dataset folder {path} does not exist: check data.root")
    return path


class ImageDataset(Dataset):
    """Base class: subclasses fill ``root``, ``files`` (relative POSIX paths) and ``targets``.

    ``class_subset``: the classes the dataset is scored on (sorted 1000-class indices, e.g.
    the 200 of ImageNet-A), or None for all 1000; see :mod:`.class_subsets` for the values
    it takes. Every target must be in it.
    """

    name: str = "images"
    default_labels: str | None = None
    class_subset: tuple[int, ...] | None = None

    def __init__(
        self,
        root: Path,
        files: Sequence[str],
        targets: Sequence[int],
        transform: Callable[[Image.Image], Any] | None = None,
        name: str | None = None,
        class_subset: ClassSubsetSpec = None,
    ) -> None:
        if len(files) == 0:
            raise DataError(f"no images found under {root}: check data.root")
        if len(files) != len(targets):
            raise AssertionError("files and targets differ in length")
        self.root = Path(root)
        self.files = list(files)
        self.targets = [int(t) for t in targets]
        self.transform = transform
        if name is not None:
            self.name = name
        subset = parse_class_subset(class_subset)
        if subset is not None:
            check_targets_in_subset(self.files, self.targets, subset, self.root)
            self.class_subset = subset

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image = load_rgb(self.root / self.files[index])
        if self.transform is not None:
            image = self.transform(image)
        return {"image": image, "target": self.targets[index], "index": index}

    @property
    def file_names(self) -> list[str]:
        """Base names of the files (what most label files are keyed by)."""
        return [f.rsplit("/", 1)[-1] for f in self.files]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, root={str(self.root)!r}, n={len(self)})"


def _class_index(wnid: str, where: Path) -> int:
    index = wnid_to_index().get(wnid)
    if index is None:
        hint = (
            "class folders 0..999 are the ImageNetV2 layout: use data=imagenetv2"
            if wnid.isdigit()
            else "rename it or use a labels file (data=files)"
        )
        raise DataError(
            f"{where} is not named by an ImageNet-1k WordNet id (like n01440764): {hint}"
        )
    return index


class WnidFolderDataset(ImageDataset):
    """Class folders named by WordNet id (the ImageNet train/val layout): ``root/n01440764/*.JPEG``,
    or a flat folder of files named ``<wnid>_<anything>.JPEG`` (data=demo's layout).

    Labels are the standard ImageNet-1k indices of the folder names (not the folders'
    position on disk), so a subset of the 1000 classes keeps the right labels.
    """

    name = "folder"

    def __init__(
        self,
        root: str | Path | None,
        transform=None,
        name: str | None = None,
        class_subset: ClassSubsetSpec = None,
    ) -> None:
        root = _require_dir(root, f"data={type(self).name}")
        files, targets, empty = [], [], []
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name[0] != "."):
            label = _class_index(folder.name, folder)
            images = list_images(folder)
            empty += [] if images else [folder.name]
            for path in images:
                files.append(f"{folder.name}/{path.name}")
                targets.append(label)
        if empty and files:
            log.warning("%s: %d class folders hold no images (e.g. %s)", root, len(empty), empty[0])
        stray = sorted(p.name for p in root.iterdir() if is_image(p))
        if stray and not files and all(_wnid_named(f) for f in stray):
            # a flat folder of <wnid>_<name> files (data=demo's layout): the class in the name
            files, targets = stray, [_class_index(f.split("_", 1)[0], root / f) for f in stray]
        elif stray:
            raise DataError(
                f"{root} holds image files outside class folders (e.g. {stray[0]}): "
                "put images into wnid folders like n01440764/ (or, all of them flat, name "
                "each <wnid>_<name>.JPEG)"
            )
        super().__init__(root, files, targets, transform, name, class_subset)


def _wnid_named(file: str) -> bool:
    """``n01440764_tench.JPEG``: a file name that starts with a class's WordNet id."""
    return file.split("_", 1)[0] in wnid_to_index()


class WnidFilesDataset(ImageDataset):
    """A flat folder of files named ``<wnid>_<anything>.<ext>``; the default root is the
    package's 100 demo photos (see assets/demo/PROVENANCE.md)."""

    name = "demo"

    def __init__(
        self,
        root: str | Path | None = None,
        transform=None,
        name: str | None = None,
        class_subset: ClassSubsetSpec = None,
    ) -> None:
        root = DEMO_ROOT if root is None else _require_dir(root, "data=demo")
        files, targets = [], []
        for path in list_images(root):
            files.append(path.name)
            targets.append(_class_index(path.name.split("_", 1)[0], path))
        super().__init__(root, files, targets, transform, name, class_subset)


# --- ImageNet val, ImageNetV2, folder + labels file -----------------------------------

VAL_NAME = re.compile(r"^ILSVRC2012_val_(\d{8})\.jpe?g$", re.IGNORECASE)
VAL_LABEL_FILES = ("val_labels.txt", "val_labels.csv", "val_labels.json")


def _single_labels(table: dict[str, tuple[int, ...]], path: Path) -> dict[str, int]:
    """File name -> its one class; a dataset's original label is single."""
    out = {}
    for name, labels in table.items():
        if len(labels) != 1:
            raise DataError(
                f"{path}: {name} has {len(labels)} classes, a dataset labels file needs exactly "
                "one per image (put multi-labels in a label set: labels=file)"
            )
        out[name] = labels[0]
    return out


def _lookup(files: Sequence[str], labels: dict[str, int], path: Path) -> list[int]:
    """Label of each file, by relative path first, then by base name."""
    targets, missing = [], []
    for f in files:
        label = labels.get(f, labels.get(f.rsplit("/", 1)[-1]))
        if label is None:
            missing.append(f)
        targets.append(label)
    if missing:
        raise DataError(
            f"{len(missing)} of {len(files)} images have no label in {path} (e.g. {missing[0]}): "
            "add them to the labels file or remove them"
        )
    return targets


class ImageNetValDataset(ImageDataset):
    """ILSVRC2012 validation in either official layout.

    - 1000 (or fewer) wnid folders ``root/n01440764/ILSVRC2012_val_00000293.JPEG``: labels
      from the folder names (as :class:`WnidFolderDataset`);
    - the flat release ``root/ILSVRC2012_val_00000001.JPEG`` (any subset): labels looked up
      by the number in the file name, from ``labels_file`` (JSON/CSV file name -> wnid or
      index, e.g. ``val_labels.txt`` with rows ``ILSVRC2012_val_00000001.JPEG n01751748``) or
      from the devkit (:mod:`.devkit`: its ground truth's 1-based ILSVRC2012_IDs, mapped
      to wnids by ``data/map_clsloc.txt`` or ``data/meta.mat``, which needs scipy).
      Without either, ``val_labels.*`` or ``ILSVRC2012_devkit_t12`` inside ``root`` or
      beside it are used.

    Files are ordered by relative path, i.e. by image number in the flat layout.
    """

    name = "imagenet"
    default_labels: str | None = "real"

    def __init__(
        self,
        root: str | Path | None,
        devkit: str | Path | None = None,
        transform=None,
        name: str | None = None,
        labels_file: str | Path | None = None,
        class_subset: ClassSubsetSpec = None,
    ) -> None:
        root = _require_dir(root, "data=imagenet")
        if any(p.is_dir() and is_wnid(p.name) for p in root.iterdir()):
            folders = WnidFolderDataset(root)
            files, targets = folders.files, folders.targets
        else:
            files = sorted(p.name for p in root.iterdir() if is_image(p))
            stray = [f for f in files if not VAL_NAME.match(f)]
            if stray:
                raise DataError(
                    f"{root} holds {stray[0]}, which is not an ILSVRC2012_val_XXXXXXXX.JPEG file: "
                    "point data.root at the val folder, or use data=folder (wnid class "
                    "folders, or flat <wnid>_<name>.JPEG files)"
                )
            targets = self._flat_targets(root, files, devkit, labels_file)
        super().__init__(root, files, targets, transform, name, class_subset)

    @staticmethod
    def _flat_targets(
        root: Path, files: list[str], devkit: str | Path | None, labels_file: str | Path | None
    ) -> list[int]:
        if labels_file is None and devkit is None:
            for folder in (root, root.parent):
                found = [folder / n for n in VAL_LABEL_FILES if (folder / n).is_file()]
                if found:
                    labels_file = found[0]
                    break
                if (folder / DEVKIT_DIR).is_dir():
                    devkit = folder / DEVKIT_DIR
                    break
        if labels_file is not None:
            path = Path(labels_file).expanduser()
            return _lookup(files, _single_labels(read_label_table(path), path), path)
        if devkit is None:
            raise DataError(
                f"{root} holds flat ILSVRC2012 val files but no labels: pass data.devkit="
                f"/path/to/{DEVKIT_DIR} or data.labels_file=/path/to/val_labels.txt"
            )
        kit = devkit_dir(devkit)
        labels = [_class_index(wnid, kit / "data") for wnid in devkit_wnids(kit)]
        targets = []
        for f in files:
            number = int(VAL_NAME.match(f).group(1))
            if not 1 <= number <= len(labels):
                raise DataError(
                    f"{f} has no entry in the devkit ground truth ({len(labels)} images): "
                    "check the file name"
                )
            targets.append(labels[number - 1])
        return targets


def _int_folders(root: Path) -> list[Path] | None:
    """The class folders of ``root`` if every subfolder is named 0..999, else None."""
    folders = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if not folders or not all(p.name.isdigit() for p in folders):
        return None
    return folders


class ImageNetV2Dataset(ImageDataset):
    """ImageNetV2 (Recht et al. 2019): folders ``0``..``999`` are the class indices.

    Folder names are mapped to int (never sorted as strings: ImageFolder would give "100"
    class 2). Files are ordered by class index, then file name. ``root`` is the extracted
    variant folder (``imagenetv2-matched-frequency-format-val``) or its parent.
    """

    name = "imagenetv2"
    default_labels: str | None = "multilabelfy"

    def __init__(
        self,
        root: str | Path | None,
        variant: str = "matched-frequency",
        transform=None,
        name: str | None = None,
        class_subset: ClassSubsetSpec = None,
    ) -> None:
        check_imagenetv2_variant(variant)
        root = _require_dir(root, "data=imagenetv2")
        folders = _int_folders(root)
        if folders is None and (root / IMAGENETV2_VARIANTS[variant]).is_dir():
            root = root / IMAGENETV2_VARIANTS[variant]
            folders = _int_folders(root)
        if folders is None:
            raise DataError(
                f"{root} is not an ImageNetV2 {variant} folder (class folders 0..999 or "
                f"{IMAGENETV2_VARIANTS[variant]}/): run python -m imagenet_multilabel prepare "
                "imagenetv2"
            )
        bad = [p.name for p in folders if int(p.name) >= 1000 or str(int(p.name)) != p.name]
        if bad:
            raise DataError(
                f"{root}/{bad[0]} is not a class folder 0..999: remove it or fix data.root"
            )
        files, targets = [], []
        for folder in sorted(folders, key=lambda p: int(p.name)):
            for path in list_images(folder):
                files.append(f"{folder.name}/{path.name}")
                targets.append(int(folder.name))
        self.variant = variant
        if variant != "matched-frequency":
            self.default_labels = None
        if name is None and variant != "matched-frequency":
            name = f"imagenetv2-{variant}"
        super().__init__(root, files, targets, transform, name, class_subset)


class LabelFileDataset(ImageDataset):
    """Any folder of images (flat or nested) with a labels file: a JSON object or CSV mapping
    each relative file name (or base name) to one class index or wnid. Every image must be
    listed; entries for other files are ignored."""

    name = "files"
    default_labels: str | None = None

    def __init__(
        self,
        root: str | Path | None,
        labels_file: str | Path | None,
        transform=None,
        name: str | None = None,
        class_subset: ClassSubsetSpec = None,
    ) -> None:
        root = _require_dir(root, "data=files")
        if labels_file is None or str(labels_file) in ("", "???"):
            raise DataError("no labels file given: pass data.labels_file=/path/to/labels.csv")
        path = Path(labels_file).expanduser()
        files = image_files(root)
        labels = _single_labels(read_label_table(path), path)
        targets = _lookup(files, labels, path)
        super().__init__(root, files, targets, transform, name, class_subset)


# --- ImageNet-A, -R, -Sketch: wnid folders --------------------------------------------------


def _archive_folder(root: Path, folder: str) -> Path:
    """``root`` itself if it holds class folders, else ``root/folder`` (the folder the
    public archive extracts to) when that exists."""
    if not any(p.is_dir() and is_wnid(p.name) for p in root.iterdir()) and (root / folder).is_dir():
        return root / folder
    return root


class ArchiveFolderDataset(WnidFolderDataset):
    """Wnid folders as a public archive extracts them: ``root`` is the extracted folder
    (``archive_folder``) or its parent."""

    archive_folder: str = ""

    def __init__(
        self,
        root: str | Path | None,
        transform=None,
        name: str | None = None,
        class_subset: ClassSubsetSpec = None,
    ) -> None:
        root = _archive_folder(_require_dir(root, f"data={type(self).name}"), self.archive_folder)
        super().__init__(root, transform, name, class_subset)


class ImageNetSketchDataset(ArchiveFolderDataset):
    """ImageNet-Sketch (Wang et al. 2019): 50,889 sketches in 1000 wnid folders; ``root``
    is the extracted ``sketch`` folder or its parent."""

    name = "imagenet_sketch"
    archive_folder = "sketch"


class _OfficialSubsetDataset(ArchiveFolderDataset):
    """A 200-class ImageNet test set in wnid folders. Its folders must be classes of the
    official list (timm's copy); ``class_subset`` defaults to the classes of its folders
    (all 200 in a complete copy), and may instead be given."""

    subset_name: str

    def __init__(
        self,
        root: str | Path | None,
        transform=None,
        name: str | None = None,
        class_subset: ClassSubsetSpec = None,
    ) -> None:
        super().__init__(root, transform, name, class_subset)
        present = sorted(set(self.targets))
        compare_with_official(present, self.subset_name, self.root)
        if self.class_subset is None:
            self.class_subset = tuple(present)


class ImageNetADataset(_OfficialSubsetDataset):
    """ImageNet-A (Hendrycks et al. 2021): 7,500 natural adversarial examples of 200
    classes; ``root`` is the extracted ``imagenet-a`` folder or its parent."""

    name = "imagenet_a"
    archive_folder = "imagenet-a"
    subset_name = "imagenet_a"


class ImageNetRDataset(_OfficialSubsetDataset):
    """ImageNet-R (Hendrycks et al. 2021): 30,000 renditions (art, cartoons, ...) of 200
    classes; ``root`` is the extracted ``imagenet-r`` folder or its parent."""

    name = "imagenet_r"
    archive_folder = "imagenet-r"
    subset_name = "imagenet_r"
