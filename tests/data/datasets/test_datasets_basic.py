"""Wnid folders and flat wnid-named files on real photos; bad input is a one-line error."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from imagenet_multilabel.core.classes import wnid_to_index
from imagenet_multilabel.core.errors import DataError
from imagenet_multilabel.data.datasets.folders import (
    DEMO_ROOT,
    LabelFileDataset,
    WnidFilesDataset,
    WnidFolderDataset,
)
from imagenet_multilabel.data.loading.module import ShardBatches


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
@pytest.mark.parametrize("batch_size", [1, 4, 16])
def test_shards_are_the_batches_of_one_process(size: int, world: int, batch_size: int) -> None:
    """Rank r gets batches r, r+W, ... of one process, whole: each image in the same batch
    at the same place, each once, ranks differing by at most one batch."""
    one = list(ShardBatches(size, batch_size))
    assert one == [list(range(s, min(s + batch_size, size))) for s in range(0, size, batch_size)]
    shards = [list(ShardBatches(size, batch_size, r, world)) for r in range(world)]
    assert sorted(b for s in shards for b in s) == one  # whole batches of one process
    for rank, shard in enumerate(shards):
        assert shard == one[rank::world]
    assert sorted(i for s in shards for b in s for i in b) == list(range(size))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert [len(ShardBatches(size, batch_size, r, world)) for r in range(world)] == list(
        map(len, shards)
    )


# --- what a folder holds besides images (made from the package's demo photos) -------------


@pytest.fixture
def demo_folder(tmp_path: Path) -> Path:
    """3 demo photos in wnid folders: root/<wnid>/<photo>."""
    root = tmp_path / "val"
    for photo in sorted(DEMO_ROOT.glob("n*.JPEG"))[:3]:
        (root / photo.name.split("_")[0]).mkdir(parents=True)
        shutil.copy(photo, root / photo.name.split("_")[0] / photo.name)
    return root


def test_broken_symlinks_are_errors(demo_folder: Path, tmp_path: Path) -> None:
    """A link to a missing target (an unmounted disk) or a link loop was skipped without a
    word: the run scored fewer images."""
    cls = next(demo_folder.iterdir())
    (cls / "gone.JPEG").symlink_to(tmp_path / "unmounted" / "x.JPEG")
    with pytest.raises(DataError, match=r"gone.JPEG is a broken symbolic link"):
        WnidFolderDataset(demo_folder)
    (cls / "gone.JPEG").unlink()
    (cls / "a.jpg").symlink_to(cls / "b.jpg")
    (cls / "b.jpg").symlink_to(cls / "a.jpg")
    with pytest.raises(DataError, match=r"a.jpg is a broken symbolic link"):
        WnidFolderDataset(demo_folder)
    labels = tmp_path / "labels.csv"
    labels.write_text("".join(f"{p.name},{p.parent.name}\n" for p in demo_folder.glob("*/n*")))
    with pytest.raises(DataError, match=r"[ab].jpg is a broken symbolic link"):
        LabelFileDataset(demo_folder, labels)


def test_a_good_symlink_is_an_image(demo_folder: Path) -> None:
    cls = next(demo_folder.iterdir())
    (cls / "link.JPEG").symlink_to(next(cls.iterdir()))
    assert len(WnidFolderDataset(demo_folder)) == 4


def test_skipped_entries_are_logged(demo_folder: Path, caplog) -> None:
    """Not only other files: a subfolder (its images are not read) and a FIFO are named."""
    cls = next(demo_folder.iterdir())
    (cls / "a.txt").write_text("notes")
    (cls / "README.txt").write_text("a dataset's own notes: skipped without a word")
    (cls / "PROVENANCE.md").write_text("the same")
    (cls / "more").mkdir()
    shutil.copy(next(cls.glob("*.JPEG")), cls / "more" / "x.JPEG")
    os.mkfifo(cls / "pipe.JPEG")
    with caplog.at_level(logging.WARNING):
        assert len(WnidFolderDataset(demo_folder)) == 3
    assert "skipped 3 entries that are not image files" in caplog.text
    assert "(e.g. a.txt)" in caplog.text and "README" not in caplog.text


def test_hidden_entries_are_skipped(demo_folder: Path, caplog) -> None:
    """.ipynb_checkpoints beside the class folders was 'not named by a WordNet id'; macOS ._
    files beside images were decode errors."""
    checkpoints = demo_folder / ".ipynb_checkpoints"
    checkpoints.mkdir()
    cls = next(demo_folder.iterdir())
    (cls / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (cls / "._n01440764_tench.JPEG").write_bytes(b"\0\5\26\7 AppleDouble")
    with caplog.at_level(logging.WARNING):
        ds = WnidFolderDataset(demo_folder)
    assert len(ds) == 3 and not caplog.text
    [ds[i] for i in range(len(ds))]


def test_empty_class_folders_are_logged(demo_folder: Path, caplog) -> None:
    (demo_folder / "n01443537").mkdir()
    with caplog.at_level(logging.WARNING):
        assert len(WnidFolderDataset(demo_folder)) == 3
    assert "1 class folders hold no images (e.g. n01443537)" in caplog.text


def test_int_folders_point_at_imagenetv2(tmp_path: Path) -> None:
    (tmp_path / "0").mkdir()
    with pytest.raises(DataError, match=r"0 is not named by .* use data=imagenetv2"):
        WnidFolderDataset(tmp_path)


def test_a_flat_folder_of_wnid_named_files_is_read_by_data_folder(tmp_path: Path) -> None:
    """data=imagenet on a flat folder of <wnid>_<name>.JPEG suggests data=folder, which
    reads it (data=demo's layout): each file's class from its name, for any such folder."""
    from imagenet_multilabel.data.datasets.folders import DEMO_ROOT, ImageNetValDataset

    rng = np.random.default_rng(0)
    demo = sorted(DEMO_ROOT.glob("n*.JPEG"))
    chosen = [demo[i] for i in rng.choice(len(demo), size=7, replace=False)]
    root = tmp_path / "flat"
    root.mkdir()
    for photo in chosen:
        (root / photo.name).write_bytes(photo.read_bytes())
    with pytest.raises(DataError, match="use data=folder") as e:
        ImageNetValDataset(root)
    assert "flat <wnid>_<name>.JPEG" in str(e.value)
    ds = WnidFolderDataset(root)
    want = {p.name: wnid_to_index()[p.name.split("_", 1)[0]] for p in chosen}
    assert dict(zip(ds.files, ds.targets, strict=True)) == want
    # a flat file not named by a wnid, or flat files beside class folders: refused
    (root / "stray.JPEG").write_bytes(chosen[0].read_bytes())
    with pytest.raises(DataError, match="outside class folders"):
        WnidFolderDataset(root)
    (root / "stray.JPEG").unlink()
    (root / "n01440764").mkdir()
    (root / "n01440764" / "x.JPEG").write_bytes(chosen[0].read_bytes())
    with pytest.raises(DataError, match="outside class folders"):
        WnidFolderDataset(root)
