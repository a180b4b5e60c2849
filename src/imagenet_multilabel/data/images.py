"""Image files: which names are images (and which are a folder's notes or broken links),
the images of a folder, and decoding one to RGB as timm does (16-bit scaled, a bad file
one line naming it). Every dataset of ``data/datasets/`` lists and reads its photos here."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image

from imagenet_multilabel.core.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")
log = logging.getLogger(__name__)


def load_rgb(path: Path) -> Image.Image:
    """Decode an image file to RGB, or raise a one-line :class:`DataError` naming the file.

    As timm's loader: ``convert("RGB")`` (grayscale replicated, alpha dropped, CMYK and
    palettes converted, the first frame of an animation), except for 16-bit images, which
    PIL would clip at 255 (an almost white picture): they are scaled to 8 bits. 32-bit
    float images have no defined range and are an error.
    """
    try:
        with Image.open(path) as im:
            im.load()  # decodes; leaving the block closes only the file
            # most photos are RGB already: no copy (convert would make one, 0.4 ms/image)
            if im.mode == "RGB":
                return im
            if im.mode.startswith("I"):
                return _sixteen_bit_to_rgb(im, path)
            if im.mode == "F":
                raise DataError(
                    f"image {path} holds 32-bit floats (mode F), which have no defined range: "
                    "convert it to an 8-bit image"
                )
            return im.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(
            f"cannot decode image {path} ({type(e).__name__}: {e}); replace or remove the file"
        ) from None


def _sixteen_bit_to_rgb(im: Image.Image, path: Path) -> Image.Image:
    values = np.asarray(im, dtype=np.int64)
    if values.size and (values.min() < 0 or values.max() > 65535):
        raise DataError(f"image {path} holds values outside 0..65535: convert it to 8 bits")
    gray = (values * 255 + 32767) // 65535  # 0..65535 -> 0..255, rounded
    return Image.fromarray(gray.astype(np.uint8), mode="L").convert("RGB")


def is_image(path: Path) -> bool:
    hidden = path.name.startswith(".")
    return not hidden and path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def check_link(path: Path) -> None:
    """An image name whose symbolic link leads nowhere (a missing target, e.g. an unmounted
    disk, or a loop) is an error: skipping it would score fewer images without a word."""
    if path.suffix.lower() in IMAGE_SUFFIXES and path.is_symlink() and not path.exists():
        raise DataError(
            f"image {path} is a broken symbolic link (its target is missing or a loop): "
            "fix or remove it"
        )


def _is_note(path: Path) -> bool:
    """A dataset's own documentation (the demo folder's PROVENANCE.md, a README)."""
    return path.is_file() and (
        path.suffix.lower() == ".md" or path.stem.upper() in ("README", "LICENSE", "LICENCE")
    )


def list_images(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, sorted by name. Other entries (files that are
    not images, subfolders) are skipped and reported in the log; hidden ones (.DS_Store,
    macOS ._ files, .ipynb_checkpoints) and notes (README, LICENSE, *.md) silently."""
    images, skipped = [], []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or _is_note(path):
            continue
        if is_image(path):
            images.append(path)
        else:
            check_link(path)
            skipped.append(path.name + ("/" if path.is_dir() else ""))
    if skipped:
        log.warning(
            "%s: skipped %d entries that are not image files (%s) (e.g. %s)",
            folder,
            len(skipped),
            "/".join(IMAGE_SUFFIXES),
            skipped[0],
        )
    return images


def image_files(root: Path) -> list[str]:
    """All images below ``root`` as sorted relative POSIX paths (none in hidden folders)."""
    files = []
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            continue
        check_link(path)
        if is_image(path):
            files.append(relative.as_posix())
    return sorted(files)
