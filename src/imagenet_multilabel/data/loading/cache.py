"""Decode once per sweep: the uint8 crops the loader workers produce, kept on disk.

``data.cache=<dir>``: before the first evaluation of a dataset with a given preprocessing,
every image is decoded, resized and cropped once (the dataset's own transform, on all
cores) into ``<dir>/<key>/images.npy``, a uint8 ``[N, C, H, W]`` array; later jobs and
runs with the same key read their crops from it (a memory map) instead of decoding the
JPEGs again. The model input stays bitwise the same: the crops are what the transform
returned, and the float conversion and normalisation still run per batch on the device
(:class:`~.transforms.Normalize`), so the cache needs ``normalize_on_device=true``.

The key is everything the crops depend on: the dataset's class and public state (root,
file list, a composite's tiles and grid...), each file's size and modification time, the
transform (its repr: size, crop, interpolation), and the versions of Pillow, torchvision
and timm. It is stored in ``meta.json`` beside the array and compared in full before use.
An entry is filled into a temporary folder and renamed into place when complete (a
killed fill leaves nothing usable behind; its folder is removed by the next fill), under a
file lock, so concurrent jobs fill each key once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Mapping
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from imagenet_multilabel.core.errors import DataError, UserError
from imagenet_multilabel.core.files import read_json, write_json
from imagenet_multilabel.core.processes import alive
from imagenet_multilabel.data.fingerprint import listing

log = logging.getLogger(__name__)

CACHE_VERSION = 1
IMAGES = "images.npy"
META = "meta.json"
# dataset attributes that do not change the pixels
NOT_PIXELS = {"transform", "targets", "name", "valid_labels", "default_labels"}
LIBRARIES = ("pillow", "torchvision", "timm")


# --------------------------------------------------------------------------- the key


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _describe(value: Any) -> Any:
    if isinstance(value, Dataset):
        return dataset_identity(value)
    if isinstance(value, np.ndarray):
        return {"array": list(value.shape), "sha256": _digest(np.ascontiguousarray(value))}
    if isinstance(value, torch.Tensor):
        return _describe(value.detach().cpu().numpy())
    if isinstance(value, Path):
        return str(value.expanduser().resolve())
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        text = json.dumps([_describe(v) for v in value], sort_keys=True, default=str)
        return {"items": len(value), "sha256": _digest(text.encode())}
    return {"type": f"{type(value).__module__}.{type(value).__qualname__}"}


def dataset_identity(dataset: Dataset) -> dict[str, Any]:
    """What a dataset's images depend on: its class, its public attributes (other datasets
    described the same way) and the size and mtime of its files."""
    out: dict[str, Any] = {"class": f"{type(dataset).__module__}.{type(dataset).__qualname__}"}
    for key, value in sorted(vars(dataset).items()):
        if not key.startswith("_") and key not in NOT_PIXELS:
            out[key] = _describe(value)
    root, files = getattr(dataset, "root", None), getattr(dataset, "files", None)
    if root is not None and files:
        out["file_stats"] = listing(Path(root), list(files))[0]  # names, sizes, mtimes
    return out


def cache_key(dataset: Dataset, transform: Any) -> dict[str, Any]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "version": CACHE_VERSION,
        "dataset": dataset_identity(dataset),
        "transform": repr(transform),
        "libraries": versions,
    }


def key_digest(key: Mapping[str, Any]) -> str:
    return _digest(json.dumps(key, sort_keys=True).encode())[:24]


# ------------------------------------------------------------------------ the entries


class CachedImages(Dataset):
    """A dataset's items with the image read from the cache: the same ``image`` (uint8
    crop), ``target`` and ``index`` as decoding would give."""

    in_memory = True  # no loader workers needed: reading a crop is a copy

    def __init__(self, dataset: Dataset, path: Path) -> None:
        self.dataset, self.path = dataset, Path(path)
        self.images = np.load(self.path, mmap_mode="r")
        if len(self.images) != len(dataset):
            raise AssertionError("cache entry and dataset differ in length")
        self.targets = list(dataset.targets)

    def __getstate__(self) -> dict[str, Any]:  # to loader workers: the path, not the array
        return {k: v for k, v in self.__dict__.items() if k != "images"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.images = np.load(self.path, mmap_mode="r")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image = torch.from_numpy(np.array(self.images[index]))
        return {"image": image, "target": self.targets[index], "index": index}

    def __getattr__(self, name: str) -> Any:  # name, files, root... of the dataset
        if name.startswith("__") or name in ("dataset", "path", "images"):
            raise AttributeError(name)
        return getattr(self.dataset, name)


def _stack(items: list[dict[str, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    images = [item["image"] for item in items]
    first = images[0]
    for item, image in zip(items, images, strict=True):
        if not isinstance(image, torch.Tensor) or image.dtype != torch.uint8:
            raise UserError(
                "data.cache keeps uint8 crops, but the dataset yields "
                f"{getattr(image, 'dtype', type(image).__name__)} images: use "
                "normalize_on_device=true"
            )
        if image.shape != first.shape:
            raise DataError(
                f"image {item['index']} is {tuple(image.shape)}, others "
                f"{tuple(first.shape)}: a dataset of differently sized crops cannot be cached"
            )
    return torch.stack(images), torch.tensor([item["index"] for item in items])


def _remove_dead_fills(root: Path, digest: str) -> None:
    for tmp in root.glob(f".fill-{digest}-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def _locked(root: Path, digest: str):
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{digest}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the process ends, however
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _open(folder: Path, key: Mapping[str, Any], size: int) -> np.ndarray | None:
    """The entry's images if its recorded key is ``key``, else None."""
    if not (folder / META).is_file():
        return None
    try:
        meta = read_json(folder / META)
        images = np.load(folder / IMAGES, mmap_mode="r")
    except (DataError, OSError, ValueError) as e:
        log.warning("decode cache %s is unreadable (%s): filling it again", folder, e)
        return None
    if meta.get("key") != json.loads(json.dumps(key)) or len(images) != size:
        log.warning("decode cache %s holds another key: filling it again", folder)
        return None
    return images


def _fill(dataset: Dataset, tmp: Path, workers: int, batch_size: int) -> np.ndarray:
    n = len(dataset)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=_stack,
        shuffle=False,
    )
    images: np.ndarray | None = None
    written = 0
    for batch, index in loader:
        if images is None:
            shape = (n, *batch.shape[1:])
            images = np.lib.format.open_memmap(tmp / IMAGES, "w+", np.uint8, shape)
        if batch.shape[1:] != images.shape[1:]:
            raise DataError(
                f"images of {getattr(dataset, 'name', 'the dataset')} differ in size "
                f"({tuple(batch.shape[1:])} vs {images.shape[1:]}): they cannot be cached"
            )
        images[index.numpy()] = batch.numpy()
        written += len(index)
    if images is None or written != n:
        raise AssertionError(f"decode cache fill wrote {written} of {n} images")
    images.flush()
    return images


def cached(
    dataset: Dataset, root: str | Path, *, workers: int, batch_size: int = 32
) -> tuple[CachedImages, dict[str, Any]]:
    """``dataset`` with its crops from the cache under ``root`` (filled first on a miss),
    and what happened (for run.json)."""
    root = Path(root).expanduser()
    key = cache_key(dataset, getattr(dataset, "transform", None))
    digest = key_digest(key)
    folder = root / digest
    name = getattr(dataset, "name", type(dataset).__name__)
    info: dict[str, Any] = {"path": str(folder), "hit": True, "fill_seconds": 0.0}
    images = _open(folder, key, len(dataset))
    if images is None:
        with _locked(root, digest):
            images = _open(folder, key, len(dataset))  # filled meanwhile by another job?
            if images is None:
                seconds = _fill_entry(dataset, folder, key, workers, batch_size)
                info.update(hit=False, fill_seconds=seconds)
                images = _open(folder, key, len(dataset))
                if images is None:
                    raise AssertionError(f"decode cache {folder} unreadable right after filling")
    del images
    what = "hit" if info["hit"] else f"filled in {info['fill_seconds']:.1f} s"
    log.info("decode cache %s for %s (%d images): %s", folder, name, len(dataset), what)
    return CachedImages(dataset, folder / IMAGES), info


def _fill_entry(
    dataset: Dataset, folder: Path, key: Mapping[str, Any], workers: int, batch_size: int
) -> float:
    digest = folder.name
    _remove_dead_fills(folder.parent, digest)
    tmp = folder.parent / f".fill-{digest}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    started = time.perf_counter()
    try:
        images = _fill(dataset, tmp, workers, batch_size)
        seconds = round(time.perf_counter() - started, 3)
        write_json(
            tmp / META,
            {
                "key": key,
                "shape": list(images.shape),
                "dtype": "uint8",
                "fill_seconds": seconds,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            },
        )
        del images
        if folder.exists():  # an entry of another key (checked above): replaced
            stale = folder.parent / f".stale-{digest}-{os.getpid()}"
            folder.rename(stale)
            shutil.rmtree(stale, ignore_errors=True)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return seconds


def cache_datasets(
    datasets: Mapping[str, Dataset], root: str | Path, *, workers: int, batch_size: int = 32
) -> tuple[dict[str, Dataset], dict[str, Any]]:
    """Every dataset through :func:`cached`; returns them and, per dataset, what happened."""
    out, info = {}, {}
    for name, dataset in datasets.items():
        out[name], info[name] = cached(dataset, root, workers=workers, batch_size=batch_size)
    return out, info


def fill_workers() -> int:
    """Decoding processes for a fill: every core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)
