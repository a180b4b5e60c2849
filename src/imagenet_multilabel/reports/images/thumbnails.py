"""Thumbnails, the one place where photos are made small: :func:`fit` (a photo fitted
into a box); the gallery's and the review page's (:func:`thumbnail`: each photo decoded once,
JPEGs at a reduced DCT scale, fitted into a square of ``size`` pixels, saved as a small JPEG
by :func:`write_thumbnails`); the W&B per-image table's (:func:`strip`: an image's photos
side by side, ``size`` pixels high)."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

log = logging.getLogger(__name__)

QUALITY = 82


def fit(
    source: Path,
    box: tuple[int, int],
    resample: Image.Resampling = Image.Resampling.LANCZOS,
    draft: bool = True,
) -> Image.Image:
    """The photo as RGB, fitted into ``box`` (width, height; aspect kept, never enlarged).
    ``draft``: a JPEG is decoded at 1/2, 1/4 or 1/8 scale where that still fills the box."""
    with Image.open(source) as im:
        if draft:
            im.draft("RGB", box)
        small = im.convert("RGB")
    small.thumbnail(box, resample)
    return small


def thumbnail(source: Path, size: int) -> Image.Image | None:
    """The photo fitted into ``size`` x ``size`` (aspect kept), or None if it cannot be read."""
    try:
        return fit(source, (size, size))
    except (OSError, SyntaxError, ValueError) as e:
        log.warning("cannot read %s (%s): shown as a placeholder", source, type(e).__name__)
        return None


def strip(files: Sequence[Path], size: int) -> Image.Image | None:
    """An image's photos (a composite's tiles, or its one photo) side by side, each fitted
    into ``4 * size`` x ``size`` (Pillow's bicubic thumbnail of the whole decoded photo);
    None without files."""
    if not files:
        return None
    tiles = [fit(path, (size * 4, size), Image.Resampling.BICUBIC, draft=False) for path in files]
    out = Image.new("RGB", (sum(t.width for t in tiles), max(t.height for t in tiles)))
    x = 0
    for tile in tiles:
        out.paste(tile, (x, 0))
        x += tile.width
    return out


def thumbnail_name(source: Path) -> str:
    return hashlib.sha1(str(source).encode()).hexdigest()[:16] + ".jpg"


def write_thumbnails(
    sources: Iterable[Path], folder: Path, size: int, threads: int | None = None
) -> dict[Path, str]:
    """Write a thumbnail of each distinct source into ``folder``; returns source -> file
    name (sources that could not be read are left out)."""
    folder.mkdir(parents=True, exist_ok=True)
    unique = sorted(set(sources))

    def one(source: Path) -> tuple[Path, str | None]:
        small = thumbnail(source, size)
        if small is None:
            return source, None
        name = thumbnail_name(source)
        small.save(folder / name, "JPEG", quality=QUALITY, optimize=True)
        return source, name

    threads = threads or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(threads) as pool:  # Pillow decodes without the GIL
        done = list(pool.map(one, unique))
    return {source: name for source, name in done if name is not None}
