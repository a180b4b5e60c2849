"""Exemplars: a small photo of a class, shown beside a prediction of that class (the
poster's "images of the predicted classes"), so that a reader sees what the model meant.

An :class:`ExemplarPool` holds candidate photos per class, from a run's own images (each
image under its original label) or from a folder of wnid-named files or folders. Each class's
candidates are taken in a seeded order (a hash of seed, class and file name: the choice for a
class does not depend on the other classes or on the order images were added);
:func:`pick_exemplars` gives the first that is found on disk and is not one of the photos
to avoid (the card's own: same real path, same file name, or same bytes).
:func:`write_exemplars` writes their thumbnails, one file per chosen photo.

    pool = ExemplarPool(seed=0)
    pool.add(files, targets, locator.find)          # or ExemplarPool.from_folder(folder)
    chosen = pick_exemplars(pool, [c for c, _ in top5], avoid=[photo])  # class -> photo
    names = write_exemplars(chosen.values(), out / "exemplars")        # photo -> file name
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Collection, Iterable, Mapping
from functools import cache
from pathlib import Path

from PIL import Image

from imagenet_multilabel.core.classes import wnid_to_index
from imagenet_multilabel.core.errors import DataError
from imagenet_multilabel.reports.images.thumbnails import write_thumbnails

EXEMPLAR_SIZE = 96  # longest side of an exemplar thumbnail (pixels), shown at 40 px

Locate = Callable[[str], Path | None]


def _as_path(file: str) -> Path | None:
    path = Path(file)
    return path if path.is_file() else None


def _order_key(seed: int, cls: int, file: str) -> bytes:
    return hashlib.sha1(f"{seed}\0{cls}\0{file}".encode()).digest()


@cache
def _digest(path: Path, size: int, mtime_ns: int) -> bytes:
    return hashlib.sha1(path.read_bytes()).digest()


def _same_bytes(a: Path, b: Path) -> bool:
    sa, sb = a.stat(), b.stat()
    return _digest(a, sa.st_size, sa.st_mtime_ns) == _digest(b, sb.st_size, sb.st_mtime_ns)


@cache
def _image_suffixes() -> frozenset[str]:
    """The file extensions Pillow opens (the thumbnails are made with it)."""
    Image.init()
    return frozenset(e for e, f in Image.registered_extensions().items() if f in Image.OPEN)


class _Avoided:
    """The photos a card shows, compared by real path, file name and (same size) bytes."""

    def __init__(self, photos: Iterable[Path]) -> None:
        self.photos = [p for p in photos if p is not None]
        self.real = {os.path.realpath(p) for p in self.photos}
        self.names = {p.name for p in self.photos}
        self.sizes: dict[int, list[Path]] = {}
        for p in self.photos:
            with contextlib.suppress(OSError):
                self.sizes.setdefault(p.stat().st_size, []).append(p)

    def __contains__(self, path: Path) -> bool:
        if path.name in self.names or os.path.realpath(path) in self.real:
            return True
        try:
            same_size = self.sizes.get(path.stat().st_size, [])
            return any(_same_bytes(path, p) for p in same_size)
        except OSError:
            return False


class ExemplarPool:
    """Candidate photos of each class (1000-class indices), taken in a seeded order."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._entries: dict[int, list[tuple[str, Locate]]] = {}
        self._ordered: dict[int, list[tuple[str, Locate]]] = {}
        self._found: dict[tuple[str, int], Path | None] = {}

    def add(self, files: Iterable[str], targets: Iterable[int], locate: Locate = _as_path) -> None:
        """Photos ``files`` of classes ``targets`` (paired); ``locate`` finds a file on disk
        when it is first needed (None: not found; default: the file name as a path)."""
        for file, target in zip(files, targets, strict=True):
            self._entries.setdefault(int(target), []).append((str(file), locate))
            self._ordered.pop(int(target), None)

    @classmethod
    def from_folder(
        cls, folder: str | Path, seed: int = 0, setting: str = "gallery.exemplars"
    ) -> ExemplarPool:
        """Photos of a folder whose files are named ``<wnid>_<anything>.<ext>`` (or
        ``<wnid>.<ext>``) or lie in folders named ``<wnid>/``, e.g. the ImageNet sample or
        the ImageNet train layout. A folder that is missing, a file or holds no wnid-named
        image is a :class:`~imagenet_multilabel.core.errors.DataError` that names ``setting``."""
        root = Path(folder).expanduser()
        what = setting
        if not root.exists():
            raise DataError(f"{what}={root} does not exist: point it at a folder of photos")
        if not root.is_dir():
            raise DataError(f"{what}={root} is a file: point it at a folder of photos")
        index = wnid_to_index()
        files, targets = [], []
        for entry in _scan(root):
            if entry.is_dir() and entry.name in index:  # the ImageNet train layout
                images = [e.path for e in _scan(Path(entry.path)) if _is_image(e)]
                files += images
                targets += [index[entry.name]] * len(images)
            elif _is_image(entry) and entry.name.split(".", 1)[0].split("_", 1)[0] in index:
                files.append(entry.path)
                targets.append(index[entry.name.split(".", 1)[0].split("_", 1)[0]])
        if not files:
            raise DataError(
                f"{what}={root} holds no wnid-named images (<wnid>_<name>.JPEG files or "
                "<wnid>/ folders of images): point it at such a folder"
            )
        pool = cls(seed)
        pool.add(files, targets)
        return pool

    @property
    def classes(self) -> set[int]:
        """The classes with at least one candidate (found on disk or not)."""
        return set(self._entries)

    def candidates(self, cls: int) -> list[tuple[str, Locate]]:
        """The class's candidates in the pool's seeded order."""
        if cls not in self._ordered:
            entries = self._entries.get(cls, [])
            self._ordered[cls] = sorted(entries, key=lambda e: _order_key(self.seed, cls, e[0]))
        return self._ordered[cls]

    def pick(self, cls: int, avoid: Collection[Path] | _Avoided = ()) -> Path | None:
        """The first candidate of ``cls`` found on disk and not among ``avoid``, or None."""
        avoided = avoid if isinstance(avoid, _Avoided) else _Avoided(avoid)
        for k, (file, locate) in enumerate(self.candidates(cls)):
            key = (file, id(locate))
            if key not in self._found:
                self._found[key] = locate(file)
            path = self._found[key]
            if path is not None and path not in avoided:
                return path
            if k >= 64:  # a class whose photos are all missing: do not stat the whole pool
                return None
        return None


def _scan(folder: Path) -> list[os.DirEntry]:
    """The entries of ``folder`` but hidden ones, by name (os.scandir: no stat per file)."""
    with os.scandir(folder) as entries:
        return sorted((e for e in entries if not e.name.startswith(".")), key=lambda e: e.name)


def _is_image(entry: os.DirEntry) -> bool:
    return os.path.splitext(entry.name)[1].lower() in _image_suffixes() and entry.is_file()


def pick_exemplars(
    pool: ExemplarPool, classes: Iterable[int], avoid: Collection[Path] = ()
) -> dict[int, Path]:
    """Class index -> a photo of that class for each of ``classes`` that has one, never one
    of ``avoid`` (the photos the exemplars are shown beside)."""
    avoided = _Avoided(avoid)
    chosen = {}
    for cls in classes:
        path = pool.pick(int(cls), avoided)
        if path is not None:
            chosen[int(cls)] = path
    return chosen


def write_exemplars(
    sources: Iterable[Path], folder: Path, size: int = EXEMPLAR_SIZE
) -> Mapping[Path, str]:
    """Write a small JPEG of each distinct photo into ``folder`` (once, however many classes
    or cards show it); returns photo -> file name (unreadable photos are left out)."""
    return write_thumbnails(sources, folder, size)
