"""Image datasets: each lists its files (relative names, the join key of label sets) and
the original single label of every image, in a fixed, documented order.

Every dataset here is a map-style ``torch.utils.data.Dataset`` whose items are dicts
``{"image": Tensor, "target": int, "index": int}``; the index is the position in
:attr:`ImageDataset.files`, which the evaluation uses to put per-image results back into
dataset order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image
from torch.utils.data import Dataset

from ..classes import wnid_to_index
from ..errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
DEMO_ROOT = Path(__file__).resolve().parents[1] / "assets" / "demo"


def load_rgb(path: Path) -> Image.Image:
    """Decode an image file to RGB, or raise a one-line :class:`DataError` naming the file."""
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(
            f"cannot decode image {path} ({type(e).__name__}: {e}); replace or remove the file"
        ) from None


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def _require_dir(root: str | Path | None, what: str) -> Path:
    if root is None or str(root) in ("", "???"):
        raise DataError(f"no dataset folder given for {what}: pass data.root=/path/to/images")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataError(f"dataset folder {path} does not exist: check data.root")
    return path


class ImageDataset(Dataset):
    """Base class: subclasses fill ``root``, ``files`` (relative POSIX paths) and ``targets``."""

    name: str = "images"

    def __init__(
        self,
        root: Path,
        files: Sequence[str],
        targets: Sequence[int],
        transform: Callable[[Image.Image], Any] | None = None,
        name: str | None = None,
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
        raise DataError(
            f"{where} is not named by an ImageNet-1k WordNet id (like n01440764): "
            "rename it or use a labels file"
        )
    return index


class WnidFolderDataset(ImageDataset):
    """Class folders named by WordNet id (the ImageNet train/val layout): ``root/n01440764/*.JPEG``.

    Labels are the standard ImageNet-1k indices of the folder names (not the folders'
    position on disk), so a subset of the 1000 classes keeps the right labels.
    """

    name = "folder"

    def __init__(self, root: str | Path | None, transform=None, name: str | None = None) -> None:
        root = _require_dir(root, "data=folder")
        files, targets = [], []
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            label = _class_index(folder.name, folder)
            for path in sorted(p for p in folder.iterdir() if _is_image(p)):
                files.append(f"{folder.name}/{path.name}")
                targets.append(label)
        stray = sorted(p.name for p in root.iterdir() if _is_image(p))
        if stray:
            raise DataError(
                f"{root} holds image files outside class folders (e.g. {stray[0]}): "
                "put images into wnid folders like n01440764/"
            )
        super().__init__(root, files, targets, transform, name)


class WnidFilesDataset(ImageDataset):
    """A flat folder of files named ``<wnid>_<anything>.<ext>``; the default root is the
    package's 100 demo photos (see assets/demo/PROVENANCE.md)."""

    name = "demo"

    def __init__(
        self, root: str | Path | None = None, transform=None, name: str | None = None
    ) -> None:
        root = DEMO_ROOT if root is None else _require_dir(root, "data=demo")
        files, targets = [], []
        for path in sorted(p for p in root.iterdir() if _is_image(p)):
            files.append(path.name)
            targets.append(_class_index(path.name.split("_", 1)[0], path))
        super().__init__(root, files, targets, transform, name)
