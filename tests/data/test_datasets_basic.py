"""Wnid folders and flat wnid-named files on real photos; bad input is a one-line error."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from imagenet_multilabel.classes import wnid_to_index
from imagenet_multilabel.data.datasets import WnidFilesDataset, WnidFolderDataset
from imagenet_multilabel.data.module import ShardSampler
from imagenet_multilabel.errors import DataError


def test_wnid_folders_give_standard_indices(wnid_folder: Path) -> None:
    ds = WnidFolderDataset(wnid_folder)
    assert len(ds) == 13
    for f, t in zip(ds.files, ds.targets, strict=True):
        assert t == wnid_to_index()[f.split("/")[0]]
    item = ds[3]
    assert item["index"] == 3 and item["target"] == ds.targets[3]


def test_demo_dataset_is_shipped() -> None:
    ds = WnidFilesDataset()
    assert len(ds) == 100 and ds.name == "demo"
    assert ds.targets == sorted(ds.targets) and len(set(ds.targets)) == 100


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda root: None, "no dataset folder given"),
        (lambda root: root / "missing", "does not exist"),
        (lambda root: (root / "empty").mkdir() or root / "empty", "no images found"),
    ],
)
def test_bad_roots(tmp_path: Path, make, match: str) -> None:
    with pytest.raises(DataError, match=match):
        WnidFolderDataset(make(tmp_path))


def test_folder_that_is_not_a_class(wnid_folder: Path) -> None:
    (wnid_folder / "cats").mkdir()
    with pytest.raises(DataError, match=r"cats is not named by an ImageNet-1k WordNet id"):
        WnidFolderDataset(wnid_folder)


def test_stray_images_outside_class_folders(wnid_folder: Path) -> None:
    first = next(wnid_folder.glob("*/*.JPEG"))
    (wnid_folder / "stray.JPEG").write_bytes(first.read_bytes())
    with pytest.raises(DataError, match="outside class folders"):
        WnidFolderDataset(wnid_folder)


def test_corrupt_image_names_the_file(wnid_folder: Path) -> None:
    path = sorted(wnid_folder.glob("*/*.JPEG"))[2]
    path.write_bytes(path.read_bytes()[:200])
    ds = WnidFolderDataset(wnid_folder)
    with pytest.raises(DataError, match=rf"cannot decode image .*{path.name}"):
        ds[2]


@pytest.mark.parametrize("size", [0, 1, 7, 101])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_shard_sampler_covers_each_index_once(size: int, world: int) -> None:
    shards = [list(ShardSampler(size, r, world)) for r in range(world)]
    assert sorted(i for s in shards for i in s) == list(range(size))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert [len(ShardSampler(size, r, world)) for r in range(world)] == list(map(len, shards))
    assert torch.tensor([len(s) for s in shards]).sum() == size
