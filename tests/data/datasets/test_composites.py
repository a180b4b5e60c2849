"""PatchML-style composites built from real photos."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from imagenet_multilabel.core.errors import DataError
from imagenet_multilabel.data.datasets.composites import CompositeDataset
from imagenet_multilabel.data.datasets.folders import WnidFilesDataset


def tile_transform(image):
    # a fixed-size tensor per photo, like a model's eval transform
    return torch.from_numpy(np.array(image.resize((32, 24)))).permute(2, 0, 1)


@pytest.fixture(scope="module")
def base() -> WnidFilesDataset:
    return WnidFilesDataset()


@pytest.mark.parametrize(
    ("rows", "cols", "shape"), [(1, 2, (3, 24, 64)), (2, 2, (3, 48, 64)), (1, 3, (3, 24, 96))]
)
def test_grid_shape_labels_and_tiles(base, rows: int, cols: int, shape) -> None:
    ds = CompositeDataset(
        base, rows=rows, cols=cols, num_images=7, seed=3, transform=tile_transform
    )
    assert len(ds) == 7 and ds.tiles.shape == (7, rows * cols)
    item = ds[4]
    assert tuple(item["image"].shape) == shape
    tiles = ds.tiles[4]
    # row-major positions: the top-left tile is the first file
    assert ds.files[4] == "+".join(base.files[t] for t in tiles)
    first = Image.open(base.root / base.files[tiles[0]]).convert("RGB")
    assert torch.equal(item["image"][:, :24, :32], tile_transform(first))
    labels = {base.targets[t] for t in tiles}
    assert len(labels) == rows * cols
    assert set(torch.nonzero(ds.valid_labels[4]).flatten().tolist()) == labels
    assert item["target"] == base.targets[tiles[0]]


def test_deterministic_by_seed(base) -> None:
    a = CompositeDataset(base, num_images=20, seed=1)
    b = CompositeDataset(base, num_images=20, seed=1)
    c = CompositeDataset(base, num_images=20, seed=2)
    assert a.files == b.files and a.files != c.files
    assert len(CompositeDataset(base).files) == 50


def test_squeeze_keeps_one_tile_size(base) -> None:
    ds = CompositeDataset(
        base, num_images=2, squeeze=True, transform=lambda im: tile_transform(im).float()
    )
    assert tuple(ds[0]["image"].shape) == (3, 24, 32)
    as_uint8 = CompositeDataset(base, num_images=2, squeeze=True, transform=tile_transform)
    image = as_uint8[0]["image"]
    assert image.dtype == torch.uint8 and tuple(image.shape) == (3, 24, 32)
    assert (image.float() - ds[0]["image"]).abs().max() <= 0.5


def test_bad_grid(base) -> None:
    with pytest.raises(DataError, match="2 to 4 tiles"):
        CompositeDataset(base, rows=3, cols=2)


@pytest.mark.parametrize("count", [0, -1, 2.5])
def test_bad_num_images(base, count) -> None:
    """0 was 'no images found under <demo folder>: check data.root', -1 a numpy traceback."""
    with pytest.raises(DataError, match=rf"num_images={count!r} composites: give a number >= 1"):
        CompositeDataset(base, num_images=count)
