"""Thumbnails: each photo decoded once (JPEGs at a reduced DCT scale), resized to fit a
square of ``size`` pixels and saved as a small JPEG."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

log = logging.getLogger(__name__)

QUALITY = 82


def thumbnail(source: Path, size: int) -> Image.Image | None:
    """The photo fitted into ``size`` x ``size`` (aspect kept), or None if it cannot be read."""
    try:
        with Image.open(source) as im:
            im.draft("RGB", (size, size))  # JPEG: decode at 1/2, 1/4 or 1/8 scale if it fits
            small = im.convert("RGB")
    except (OSError, SyntaxError, ValueError) as e:
        log.warning("cannot read %s (%s): shown as a placeholder", source, type(e).__name__)
        return None
    small.thumbnail((size, size), Image.Resampling.LANCZOS)
    return small


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
