"""Getting datasets onto disk: download with resume and checksums, atomic extraction.

ImageNetV2 is public: :func:`prepare_imagenetv2` downloads a variant's archive from the
Hugging Face mirror named in the ImageNetV2 README, checks its size and SHA-256 (values from
TensorFlow Datasets' ``imagenet_v2/checksums.tsv``), and extracts it so that the dataset
folder appears only once it is complete (it then holds a ``.complete`` marker).
ILSVRC2012 is not freely downloadable: :func:`check_imagenet` validates a folder instead.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from .datasets import IMAGENETV2_VARIANTS, ImageNetValDataset, _is_image

MARKER = ".complete"
LOOPBACK = ("localhost", "127.0.0.1", "::1")
_HF = "https://huggingface.co/datasets/vaishaal/ImageNetV2/resolve/main"


@dataclass(frozen=True)
class Archive:
    """A dataset archive: where to get it, what it must be, what it must contain."""

    url: str
    size: int | None
    sha256: str | None
    folder: str
    num_classes: int = 1000
    num_images: int = 10_000


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

IMAGENET_HOWTO = (
    "ILSVRC2012 cannot be downloaded without an account: sign in at "
    "https://image-net.org/download-images, accept the terms of access, download "
    "ILSVRC2012_img_val.tar (6.3 GB, 50,000 JPEGs) and ILSVRC2012_devkit_t12.tar.gz, extract "
    "the images into one folder and the devkit beside it, then run: python -m "
    "imagenet_multilabel.prepare imagenet --root /path/to/val"
)


# --- download ------------------------------------------------------------------------------


def _offline() -> bool:
    return any(
        os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
        for v in ("HF_HUB_OFFLINE", "IMAGENET_ML_OFFLINE")
    )


def _opener(url: str) -> urllib.request.OpenerDirector:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme in ("http", "https") and parsed.hostname not in LOOPBACK and _offline():
        raise DataError(
            f"offline (HF_HUB_OFFLINE is set): cannot download {url}; unset it, or download "
            "the file elsewhere and pass --archive FILE"
        )
    if parsed.scheme not in ("http", "https", "file"):
        raise DataError(f"cannot download {url}: only http(s):// and file:// URLs are supported")
    if parsed.hostname in LOOPBACK:
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener()


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _fetch(url: str, part: Path, timeout: float, chunk: int) -> None:
    """Append the rest of ``url`` to ``part`` (HTTP Range), or rewrite it if not resumable."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "imagenet-multilabel"})
    if offset and not url.startswith("file:"):
        request.add_header("Range", f"bytes={offset}-")
    try:
        with _opener(url).open(request, timeout=timeout) as response:
            status = getattr(response, "status", None) or 200
            mode = "ab" if status == 206 else "wb"
            with part.open(mode) as f:
                while block := response.read(chunk):
                    f.write(block)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # nothing left to send: the part file is whole
            return
        raise DataError(f"cannot download {url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        reason = getattr(e, "reason", None) or e
        resume = f" to resume from {part.name}" if part.exists() and part.stat().st_size else ""
        raise DataError(
            f"download of {url} failed ({reason}); check the network and rerun{resume}"
        ) from None


def download(
    url: str,
    dest: str | Path,
    size: int | None = None,
    sha256: str | None = None,
    timeout: float = 15.0,
    chunk: int = 1 << 20,
) -> Path:
    """Download ``url`` to ``dest`` via ``dest.part``, resuming an interrupted download.

    Args:
        url: ``http(s)://`` or ``file://`` URL.
        dest: final file; written only once complete and verified.
        size: expected size in bytes, or None.
        sha256: expected SHA-256 hex digest, or None.
        timeout: seconds to wait for the server (connection and each read).

    Raises:
        DataError: offline, unreachable, interrupted (the part file is kept for resuming),
            or wrong size / checksum (the part file is removed).
    """
    dest = Path(dest)
    if (
        dest.is_file()
        and (size is None or dest.stat().st_size == size)
        and (sha256 is None or sha256_of(dest) == sha256)
    ):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if size is not None and part.exists() and part.stat().st_size > size:
        part.unlink()
    if size is None or not part.exists() or part.stat().st_size < size:
        _fetch(url, part, timeout, chunk)
    got = part.stat().st_size
    if size is not None and got < size:
        raise DataError(
            f"download of {url} stopped at {got} of {size} bytes; rerun to resume from {part.name}"
        )
    if size is not None and got != size:
        part.unlink()
        raise DataError(f"{url} has {got} bytes, expected {size}; the file was removed, rerun")
    if sha256 is not None:
        digest = sha256_of(part)
        if digest != sha256.lower():
            part.unlink()
            raise DataError(
                f"SHA-256 of {url} is {digest}, expected {sha256}; the corrupt download was "
                "removed, rerun to download it again"
            )
    os.replace(part, dest)
    return dest


# --- extraction ----------------------------------------------------------------------------


def _safe_members(tar: tarfile.TarFile, archive: Path) -> list[tarfile.TarInfo]:
    members = []
    for member in tar.getmembers():
        name = member.name
        parts = Path(name).parts
        if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
            raise DataError(f"{archive} has an unsafe member path {name!r}; refusing to extract")
        if not (member.isfile() or member.isdir()):
            raise DataError(f"{archive} has a link or special file {name!r}; refusing to extract")
        members.append(member)
    return members


def is_complete(folder: str | Path) -> bool:
    """Whether ``folder`` is a finished extraction (it holds the ``.complete`` marker)."""
    return (Path(folder) / MARKER).is_file()


def count_class_folders(folder: Path) -> tuple[int, int]:
    """(number of class folders named 0..999, number of images in them)."""
    classes = images = 0
    for sub in folder.iterdir():
        if sub.is_dir() and sub.name.isdigit() and int(sub.name) < 1000:
            classes += 1
            images += sum(1 for p in sub.iterdir() if _is_image(p))
    return classes, images


def extract(
    archive: str | Path,
    target: str | Path,
    folder: str | None = None,
    num_classes: int = 1000,
    num_images: int = 10_000,
) -> Path:
    """Extract a tar archive of class folders 0..999 to ``target``, atomically.

    The archive is unpacked into a temporary folder beside ``target``; its dataset folder
    (``folder`` inside the archive, or its only top folder) is checked for ``num_classes``
    class folders and ``num_images`` images, marked complete and renamed to ``target``.

    Raises:
        DataError: unsafe member paths (absolute, ``..``, links), wrong counts, or a
            ``target`` that exists without the completion marker.
    """
    archive, target = Path(archive), Path(target)
    if is_complete(target):
        return target
    if target.exists():
        raise DataError(
            f"{target} exists but is not a complete extraction (no {MARKER}): remove it and rerun"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                members = _safe_members(tar, archive)
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(tmp, members=members, filter="data")
                else:  # pragma: no cover - Python without extraction filters
                    tar.extractall(tmp, members=members)
        except (tarfile.TarError, EOFError, OSError) as e:
            raise DataError(f"cannot extract {archive} ({e}); delete it, download again") from None
        top = list(tmp.iterdir())
        if folder is not None and (tmp / folder).is_dir():
            data = tmp / folder
        elif len(top) == 1 and top[0].is_dir():
            data = top[0]
        else:
            data = tmp
        classes, images = count_class_folders(data)
        if classes != num_classes or images != num_images:
            raise DataError(
                f"{archive} holds {classes} class folders and {images} images, expected "
                f"{num_classes} and {num_images}; delete it and download again"
            )
        (data / MARKER).write_text(
            json.dumps({"archive": archive.name, "classes": classes, "images": images}) + "\n"
        )
        os.replace(data, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


# --- datasets ------------------------------------------------------------------------------


def prepare_imagenetv2(
    root: str | Path,
    variant: str = "matched-frequency",
    url: str | None = None,
    archive_file: str | Path | None = None,
    keep_archive: bool = False,
    timeout: float = 15.0,
) -> Path:
    """Download (or take ``archive_file``), verify and extract an ImageNetV2 variant under
    ``root``; returns the dataset folder. Does nothing if it is already complete.

    ``url`` replaces the official URL (a mirror, or a test server); size and SHA-256 are
    then checked only when the official archive is used.
    """
    if variant not in IMAGENETV2_ARCHIVES:
        raise DataError(
            f"unknown ImageNetV2 variant {variant!r}: use one of {', '.join(IMAGENETV2_ARCHIVES)}"
        )
    spec = IMAGENETV2_ARCHIVES[variant]
    root = Path(root).expanduser()
    target = root / spec.folder
    if is_complete(target):
        return target
    try:
        root.mkdir(parents=True, exist_ok=True)
        os.close(os.open(root / ".write-test", os.O_CREAT | os.O_WRONLY, 0o600))
        (root / ".write-test").unlink()
    except OSError as e:
        raise DataError(f"cannot write to {root} ({e.strerror}): choose another --root") from None
    if archive_file is not None:
        archive = Path(archive_file).expanduser()
        if not archive.is_file():
            raise DataError(f"archive {archive} does not exist: check --archive")
    else:
        source = url or spec.url
        name = Path(urllib.parse.urlparse(source).path).name or f"imagenetv2-{variant}.tar.gz"
        official = url is None
        archive = download(
            source,
            root / name,
            size=spec.size if official else None,
            sha256=spec.sha256 if official else None,
            timeout=timeout,
        )
    extract(archive, target, spec.folder, spec.num_classes, spec.num_images)
    if archive_file is None and not keep_archive:
        archive.unlink(missing_ok=True)
    return target


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
