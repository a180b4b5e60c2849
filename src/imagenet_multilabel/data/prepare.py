"""Getting datasets onto disk: download with resume and checksums (``data/download.py``),
atomic extraction.

Public archives (:data:`ARCHIVES`): ImageNetV2, ImageNet-A, ImageNet-R, ImageNet-Sketch and
the five ImageNet-C archives. :func:`prepare_archive` downloads one (or takes a local copy),
checks its size and checksum where they are published, and extracts it so that the
dataset folder appears only once it is complete (it then holds a ``.complete`` marker).
Sizes and SHA-256 come from TensorFlow Datasets' ``checksums.tsv`` of each dataset (and, for
ImageNet-Sketch, the same values in Hugging Face's ``imagenet_sketch`` dataset info); the
ImageNet-C archives have only the MD5 sums Zenodo publishes (record 2235448), so those are
checked by MD5 and their sizes are not pinned.
ILSVRC2012 is not freely downloadable: :func:`check_imagenet` validates a folder instead.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from imagenet_multilabel.core.classes import is_wnid
from imagenet_multilabel.core.errors import DataError
from imagenet_multilabel.data.datasets.folders import ImageNetValDataset
from imagenet_multilabel.data.datasets.imagenet_c import RELEASED
from imagenet_multilabel.data.datasets.variants import IMAGENETV2_VARIANTS
from imagenet_multilabel.data.download import download, unpacked, verify
from imagenet_multilabel.data.images import is_image

MARKER = ".complete"
_HF = "https://huggingface.co/datasets/vaishaal/ImageNetV2/resolve/main"


@dataclass(frozen=True)
class Archive:
    """A dataset archive: where to get it, what it must be, what it must contain.

    ``layout``: ``index`` (class folders 0..999, ImageNetV2) or ``wnid`` (class folders
    named by WordNet id). ``num_images`` None: the image count is not checked.
    """

    url: str
    size: int | None
    sha256: str | None
    folder: str
    num_classes: int = 1000
    num_images: int | None = 10_000
    md5: str | None = None
    layout: str = "index"


IMAGENETV2_ARCHIVES = {
    "matched-frequency": Archive(
        f"{_HF}/imagenetv2-matched-frequency.tar.gz",
        1_264_079_360,
        "f0c37fdf925916b19ea1323cd9a2208cdb6959ba2c32eef2a7fc393835c9ca7c",
        IMAGENETV2_VARIANTS["matched-frequency"],
    ),
    "threshold0.7": Archive(
        f"{_HF}/imagenetv2-threshold0.7.tar.gz",
        1_249_906_176,
        "32142bfe998f9cfa4141be691f6a80eeb1e27b24bd532a668eb08c26d98897a2",
        IMAGENETV2_VARIANTS["threshold0.7"],
    ),
    "top-images": Archive(
        f"{_HF}/imagenetv2-top-images.tar.gz",
        1_245_927_936,
        "85e4ace30f3f0d660152062254b8759dda66267b27f7ec0fd8d5768f1073a04b",
        IMAGENETV2_VARIANTS["top-images"],
    ),
}

_HENDRYCKS = "https://people.eecs.berkeley.edu/~hendrycks"
IMAGENET_A_ARCHIVE = Archive(
    f"{_HENDRYCKS}/imagenet-a.tar",
    687_552_512,
    "3bb3632277e6ba6392ea64c02ddbf4dd2266c9caffd6bc09c9656d28f012589e",
    "imagenet-a",
    num_classes=200,
    num_images=7_500,
    layout="wnid",
)
IMAGENET_R_ARCHIVE = Archive(
    f"{_HENDRYCKS}/imagenet-r.tar",
    2_191_079_936,
    "18c6bf493b39a0d975d48e587437f562caab9c52ae6327dcfa9dd8eb54aa1b52",
    "imagenet-r",
    num_classes=200,
    num_images=30_000,
    layout="wnid",
)
# The authors' Google Drive file (id 1Mj0i5HBthqH1p_yeXzsg22gZduvgoNeA) needs a browser
# confirmation; the Hugging Face copy has the same size and SHA-256. The image count is not
# pinned: the published 50,889 counts the .JPEG files only.
IMAGENET_SKETCH_ARCHIVE = Archive(
    "https://huggingface.co/datasets/songweig/imagenet_sketch/resolve/main/data/"
    "ImageNet-Sketch.zip",
    7_593_573_012,
    "4d3ce6b82a7c48aabf14aeac105eb533e75707f152cc858f55bfc022031a72ed",
    "sketch",
    num_classes=1000,
    num_images=None,
    layout="wnid",
)
_ZENODO = "https://zenodo.org/records/2235448/files"
_IMAGENET_C_MD5 = {
    "blur": "2d8e81fdd8e07fef67b9334fa635e45c",
    "digital": "89157860d7b10d5797849337ca2e5c03",
    "extra": "d492dfba5fc162d8ec2c3cd8ee672984",
    "noise": "e80562d7f6c3f8834afb1ecf27252745",
    "weather": "33ffea4db4d93fe4a428c40a6ce0c25d",
}
# Each holds <corruption>/<severity 1..5>/<wnid>/ for the corruptions of RELEASED[set]; the
# MD5 pins the content, so the images are counted (recorded in .complete) but not checked.
IMAGENET_C_ARCHIVES = {
    name: Archive(f"{_ZENODO}/{name}.tar?download=1", None, None, "", 1000, None, md5, "wnid")
    for name, md5 in _IMAGENET_C_MD5.items()
}
ARCHIVES = {
    "imagenet_a": IMAGENET_A_ARCHIVE,
    "imagenet_r": IMAGENET_R_ARCHIVE,
    "imagenet_sketch": IMAGENET_SKETCH_ARCHIVE,
}

IMAGENET_HOWTO = (
    "ILSVRC2012 cannot be downloaded without an account: sign in at "
    "https://image-net.org/download-images, accept the terms of access, download "
    "ILSVRC2012_img_val.tar (6.3 GB, 50,000 JPEGs) and ILSVRC2012_devkit_t12.tar.gz, extract "
    "the images into one folder and the devkit beside it, then run: python -m "
    "imagenet_multilabel prepare imagenet --root /path/to/val"
)


def is_complete(folder: str | Path) -> bool:
    """Whether ``folder`` is a finished extraction (it holds the ``.complete`` marker)."""
    return (Path(folder) / MARKER).is_file()


def count_class_folders(folder: Path) -> tuple[int, int]:
    """(number of class folders named 0..999, number of images in them)."""
    classes = images = 0
    for sub in folder.iterdir():
        if sub.is_dir() and sub.name.isdigit() and int(sub.name) < 1000:
            classes += 1
            images += sum(1 for p in sub.iterdir() if is_image(p))
    return classes, images


def count_wnid_folders(folder: Path) -> tuple[int, int]:
    """(number of class folders named by an ImageNet-1k wnid, number of images in them)."""
    classes = images = 0
    for sub in folder.iterdir():
        if sub.is_dir() and is_wnid(sub.name):
            classes += 1
            images += sum(1 for p in sub.iterdir() if is_image(p))
    return classes, images


COUNTERS: dict[str, Callable[[Path], tuple[int, int]]] = {
    "index": count_class_folders,
    "wnid": count_wnid_folders,
}


def _check_counts(
    data: Path,
    archive: Path,
    num_classes: int,
    num_images: int | None,
    layout: str,
    where: str = "",
) -> dict[str, int]:
    classes, images = COUNTERS[layout](data)
    if classes != num_classes or (num_images is not None and images != num_images):
        expected = f"{num_classes} and {num_images}" if num_images is not None else num_classes
        raise DataError(
            f"{archive}{where} holds {classes} class folders and {images} images, expected "
            f"{expected}; delete it and download again"
        )
    return {"classes": classes, "images": images}


def _mark_and_move(data: Path, target: Path, record: dict) -> None:
    (data / MARKER).write_text(json.dumps(record) + "\n")
    os.replace(data, target)


def _check_target(target: Path) -> None:
    if target.exists():
        raise DataError(
            f"{target} exists but is not a complete extraction (no {MARKER}): remove it and rerun"
        )


def extract(
    archive: str | Path,
    target: str | Path,
    folder: str | None = None,
    num_classes: int = 1000,
    num_images: int | None = 10_000,
    layout: str = "index",
) -> Path:
    """Extract a tar or zip archive of class folders to ``target``, atomically.

    The archive is unpacked into a temporary folder beside ``target``; its dataset folder
    (``folder`` inside the archive, or its only top folder) is checked for ``num_classes``
    class folders (named 0..999 for ``layout="index"``, by wnid for ``"wnid"``) and
    ``num_images`` images (None: not counted), marked complete and renamed to ``target``.

    Raises:
        DataError: unsafe member paths (absolute, ``..``, links), wrong counts, or a
            ``target`` that exists without the completion marker.
    """
    archive, target = Path(archive), Path(target)
    if is_complete(target):
        return target
    _check_target(target)
    with unpacked(archive, target.parent) as tmp:
        top = list(tmp.iterdir())
        if folder and (tmp / folder).is_dir():
            data = tmp / folder
        elif len(top) == 1 and top[0].is_dir():
            data = top[0]
        else:
            data = tmp
        counts = _check_counts(data, archive, num_classes, num_images, layout)
        _mark_and_move(data, target, {"archive": archive.name, **counts})
    return target


def extract_imagenet_c(
    archive: str | Path,
    root: str | Path,
    corruptions: tuple[str, ...],
    num_classes: int = 1000,
    num_images: int | None = None,
) -> list[Path]:
    """Extract an ImageNet-C archive (``<corruption>/<1..5>/<wnid>/``) into ``root``: each
    of ``corruptions`` is checked (5 severities of ``num_classes`` wnid folders, and of
    ``num_images`` images each unless None), marked complete and renamed to ``root/<corruption>``;
    those already complete are left as they are."""
    archive, root = Path(archive), Path(root)
    todo = [c for c in corruptions if not is_complete(root / c)]
    for c in todo:
        _check_target(root / c)
    if todo:
        with unpacked(archive, root) as tmp:
            top = [p for p in tmp.iterdir() if p.is_dir()]
            data = top[0] if len(top) == 1 and top[0].name not in corruptions else tmp
            for c in todo:
                if not (data / c).is_dir():
                    raise DataError(f"{archive} has no {c}/ folder: delete it, download again")
                record: dict[str, object] = {"archive": archive.name}
                for severity in range(1, 6):
                    sub = data / c / str(severity)
                    if not sub.is_dir():
                        raise DataError(
                            f"{archive} has no {c}/{severity}/: delete it, download again"
                        )
                    counts = _check_counts(
                        sub, archive, num_classes, num_images, "wnid", f" ({c}/{severity})"
                    )
                    record[str(severity)] = counts
                _mark_and_move(data / c, root / c, record)
    return [root / c for c in corruptions]


# --- datasets ------------------------------------------------------------------------------


def _archive_source(
    spec: Archive,
    root: Path,
    url: str | None,
    archive_file: str | Path | None,
    timeout: float,
    default_name: str,
) -> Path:
    """The archive on disk: ``archive_file`` (checked against the published size and
    checksums), or a download of ``url`` (unchecked) or of the official URL (checked)."""
    if archive_file is not None:
        archive = Path(archive_file).expanduser()
        if not archive.is_file():
            raise DataError(f"archive {archive} does not exist: check --archive")
        try:
            verify(archive, spec.size, spec.sha256, spec.md5)
        except DataError as e:
            raise DataError(f"{e}: not the published archive; download it again") from None
        return archive
    source = url or spec.url
    name = Path(urllib.parse.urlparse(source).path).name or default_name
    official = url is None
    return download(
        source,
        root / name,
        size=spec.size if official else None,
        sha256=spec.sha256 if official else None,
        timeout=timeout,
        md5=spec.md5 if official else None,
    )


def checksum_note(spec: Archive, url: str | None = None) -> str:
    """What :func:`prepare_archive` checks of ``spec``'s archive (one line for the user)."""
    if url is not None:
        return "not verified: downloaded from --url, the published checksum is not applied"
    checks = [n for n, v in (("size", spec.size), ("SHA-256", spec.sha256), ("MD5", spec.md5)) if v]
    if not checks or checks == ["size"]:
        return "checksum not verified: none is published for this archive"
    return "verified: " + " and ".join(checks)


def _check_writable(root: Path) -> None:
    """``root`` could be made and written, judged without making it: its nearest existing
    ancestor is a folder this process may write."""
    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    reason = (
        None
        if existing.is_dir() and os.access(existing, os.W_OK | os.X_OK)
        else "Not a directory"
        if not existing.is_dir()
        else "Permission denied"
    )
    if reason:
        raise DataError(f"cannot write to {root} ({reason}): choose another --root")


def prepare_archive(
    spec: Archive,
    root: str | Path,
    url: str | None = None,
    archive_file: str | Path | None = None,
    keep_archive: bool = False,
    timeout: float = 15.0,
) -> Path:
    """Download (or take ``archive_file``), verify and extract ``spec`` under ``root``;
    returns the dataset folder ``root/spec.folder``. Does nothing if it is already complete.

    ``url`` replaces the official URL (a mirror, or a test server); size and checksums are
    then not checked. A local ``archive_file`` is checked as the official download is.
    """
    root = Path(root).expanduser()
    target = root / spec.folder
    if is_complete(target):
        return target
    _check_writable(root)
    archive = _archive_source(spec, root, url, archive_file, timeout, f"{spec.folder}.tar")
    extract(archive, target, spec.folder, spec.num_classes, spec.num_images, spec.layout)
    if archive_file is None and not keep_archive:
        archive.unlink(missing_ok=True)
    return target


def prepare_imagenetv2(
    root: str | Path,
    variant: str = "matched-frequency",
    url: str | None = None,
    archive_file: str | Path | None = None,
    keep_archive: bool = False,
    timeout: float = 15.0,
) -> Path:
    """:func:`prepare_archive` for an ImageNetV2 variant."""
    if variant not in IMAGENETV2_ARCHIVES:
        raise DataError(
            f"unknown ImageNetV2 variant {variant!r}: use one of {', '.join(IMAGENETV2_ARCHIVES)}"
        )
    return prepare_archive(
        IMAGENETV2_ARCHIVES[variant], root, url, archive_file, keep_archive, timeout
    )


def prepare_imagenet_c(
    root: str | Path,
    sets: tuple[str, ...] = tuple(RELEASED),
    url: str | None = None,
    archive_file: str | Path | None = None,
    keep_archive: bool = False,
    timeout: float = 15.0,
) -> Path:
    """Download, verify (MD5) and extract the ImageNet-C archives ``sets`` (noise, blur,
    weather, digital, extra) into ``root``; returns ``root``, which then holds
    ``<corruption>/<severity>/<wnid>/`` for their corruptions. ``url`` and
    ``archive_file`` need a single set."""
    unknown = [s for s in sets if s not in IMAGENET_C_ARCHIVES]
    if unknown:
        raise DataError(
            f"unknown ImageNet-C archive {unknown[0]!r}: use {', '.join(IMAGENET_C_ARCHIVES)}"
        )
    if (url is not None or archive_file is not None) and len(sets) != 1:
        raise DataError("--url and --archive take one ImageNet-C archive: add --set NAME")
    root = Path(root).expanduser()
    for name in sets:
        spec = IMAGENET_C_ARCHIVES[name]
        if all(is_complete(root / c) for c in RELEASED[name]):
            continue
        archive = _archive_source(spec, root, url, archive_file, timeout, f"{name}.tar")
        extract_imagenet_c(archive, root, RELEASED[name], spec.num_classes, spec.num_images)
        if archive_file is None and not keep_archive:
            archive.unlink(missing_ok=True)
    return root


def check_imagenet(
    root: str | Path | None,
    devkit: str | Path | None = None,
    labels_file: str | Path | None = None,
) -> dict[str, int | str]:
    """Validate an ILSVRC2012 val folder (either layout); returns its counts.

    Raises:
        DataError: no folder (the message says how to get ILSVRC2012), or an unusable layout.
    """
    if root is not None and Path(root).expanduser().is_file():
        raise DataError(f"{root} is a file, not a folder: pass --root /path/to/val")
    if root is None or not Path(root).expanduser().is_dir():
        raise DataError(f"no ILSVRC2012 val folder at {root}. {IMAGENET_HOWTO}")
    ds = ImageNetValDataset(root, devkit=devkit, labels_file=labels_file)
    layout = "wnid folders" if "/" in ds.files[0] else "flat files"
    return {
        "root": str(ds.root),
        "layout": layout,
        "images": len(ds),
        "classes": len(set(ds.targets)),
        "complete": int(len(ds) == 50_000 and len(set(ds.targets)) == 1000),
    }
