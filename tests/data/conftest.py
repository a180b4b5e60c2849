"""Fixtures: small datasets in the real layouts, built from real photos (see ../conftest.py)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import photo


@pytest.fixture
def put_photo() -> Callable[[int, Path], Path]:
    """Copy a real photo for class ``index`` to ``dest`` (the class is given by ``dest``)."""

    def put(index: int, dest: Path) -> Path:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(photo(index), dest)
        return dest

    return put


# image number -> class index of a small flat ILSVRC2012 val subset
VAL_SUBSET = {1: 65, 2: 970, 3: 230, 17: 2, 293: 0}


@pytest.fixture
def val_subset() -> dict[int, int]:
    """Image number -> class index of the images in :func:`flat_val`."""
    return dict(VAL_SUBSET)


@pytest.fixture
def flat_val(tmp_path: Path, put_photo) -> Path:
    """A flat ILSVRC2012 val folder with 5 images (no labels file)."""
    root = tmp_path / "val"
    for number, index in VAL_SUBSET.items():
        put_photo(index, root / f"ILSVRC2012_val_{number:08d}.JPEG")
    return root
