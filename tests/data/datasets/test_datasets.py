"""Image datasets in their real layouts, built from real ImageNet photos."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from imagenet_multilabel.core.classes import wnids
from imagenet_multilabel.core.errors import DataError
from imagenet_multilabel.data.datasets.folders import (
    ImageNetV2Dataset,
    ImageNetValDataset,
    LabelFileDataset,
    WnidFolderDataset,
)

VAL_SUBSET = {1: 65, 2: 970, 3: 230, 17: 2, 293: 0}  # as in conftest.flat_val
VAL_FILES = [f"ILSVRC2012_val_{n:08d}.JPEG" for n in sorted(VAL_SUBSET)]


@pytest.fixture(autouse=True)
def _same_subset(val_subset: dict[int, int]) -> None:
    assert val_subset == VAL_SUBSET


# --- ImageNet val -----------------------------------------------------------------------


def _devkit(parent: Path) -> Path:
    """A devkit whose ILSVRC2012_IDs run in reverse wnid order (ID k -> class 1000 - k), so
    a loader that assumed the sorted-wnid order would give wrong labels."""
    data = parent / "ILSVRC2012_devkit_t12" / "data"
    data.mkdir(parents=True)
    rows = [f"{wnids()[1000 - k]} {k} name_{k}" for k in range(1, 1001)]
    (data / "map_clsloc.txt").write_text("\n".join(rows) + "\n")
    truth = [str(1000 - VAL_SUBSET.get(n, 500)) for n in range(1, 301)]
    (data / "ILSVRC2012_validation_ground_truth.txt").write_text("\n".join(truth) + "\n")
    return data.parent


def test_val_flat_with_devkit_maps_ilsvrc_ids(flat_val: Path, tmp_path: Path) -> None:
    kit = _devkit(tmp_path / "kit")
    ds = ImageNetValDataset(flat_val, devkit=kit)
    assert ds.files == VAL_FILES
    assert ds.targets == [VAL_SUBSET[n] for n in sorted(VAL_SUBSET)]
    assert ds.file_names == VAL_FILES
    assert ds.default_labels == "real" and ds.name == "imagenet"
    item = ds[4]
    assert item["target"] == 0 and item["index"] == 4 and item["image"].mode == "RGB"


def test_val_flat_finds_devkit_beside_root(flat_val: Path) -> None:
    _devkit(flat_val.parent)
    assert ImageNetValDataset(flat_val).targets[0] == VAL_SUBSET[1]


def test_val_flat_with_labels_file(flat_val: Path, tmp_path: Path) -> None:
    rows = [f"ILSVRC2012_val_{n:08d}.JPEG {wnids()[c]}" for n, c in VAL_SUBSET.items()]
    labels = tmp_path / "val_labels.txt"
    labels.write_text("\n".join(rows) + "\n")
    ds = ImageNetValDataset(flat_val, labels_file=labels)
    assert ds.targets == [VAL_SUBSET[n] for n in sorted(VAL_SUBSET)]
    # found automatically beside the folder too
    assert ImageNetValDataset(flat_val).targets == ds.targets


def test_val_flat_without_labels_is_an_error(flat_val: Path) -> None:
    with pytest.raises(DataError, match=r"no labels: pass data.devkit"):
        ImageNetValDataset(flat_val)


def test_val_flat_meta_mat_needs_scipy(flat_val: Path, tmp_path: Path, monkeypatch) -> None:
    kit = _devkit(tmp_path / "kit")
    (kit / "data" / "map_clsloc.txt").unlink()
    (kit / "data" / "meta.mat").write_bytes(b"MATLAB 5.0 MAT-file")
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.io", None)
    with pytest.raises(DataError, match=r"needs scipy"):
        ImageNetValDataset(flat_val, devkit=kit)


def test_val_flat_rejects_bad_devkit_and_stray_files(flat_val: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"is not the ILSVRC2012 devkit"):
        ImageNetValDataset(flat_val, devkit=tmp_path)
    kit = _devkit(tmp_path / "kit")
    (flat_val / "ILSVRC2012_val_00000500.JPEG").write_bytes(
        (flat_val / "ILSVRC2012_val_00000001.JPEG").read_bytes()
    )
    with pytest.raises(DataError, match=r"no entry in the devkit ground truth"):
        ImageNetValDataset(flat_val, devkit=kit)
    (flat_val / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(DataError, match=r"holiday.jpg, which is not an ILSVRC2012_val"):
        ImageNetValDataset(flat_val, devkit=kit)


def test_val_wnid_folders(tmp_path: Path, put_photo) -> None:
    root = tmp_path / "val"
    put_photo(970, root / wnids()[970] / "ILSVRC2012_val_00000002.JPEG")
    put_photo(65, root / wnids()[65] / "ILSVRC2012_val_00000001.JPEG")
    ds = ImageNetValDataset(root)
    assert ds.files == [
        f"{wnids()[65]}/ILSVRC2012_val_00000001.JPEG",
        f"{wnids()[970]}/ILSVRC2012_val_00000002.JPEG",
    ]
    assert ds.targets == [65, 970]
    assert ds.file_names == ["ILSVRC2012_val_00000001.JPEG", "ILSVRC2012_val_00000002.JPEG"]


def test_corrupt_jpeg_names_the_file(flat_val: Path, tmp_path: Path) -> None:
    kit = _devkit(tmp_path / "kit")
    bad = flat_val / "ILSVRC2012_val_00000003.JPEG"
    bad.write_bytes(bad.read_bytes()[:200])
    ds = ImageNetValDataset(flat_val, devkit=kit)
    with pytest.raises(DataError, match=r"cannot decode image .*ILSVRC2012_val_00000003.JPEG"):
        ds[2]


# --- ImageNetV2 ---------------------------------------------------------------------------

V2_CLASSES = [100, 2, 10, 0, 999]


@pytest.fixture
def v2_root(tmp_path: Path, put_photo) -> Path:
    root = tmp_path / "imagenetv2-matched-frequency-format-val"
    for c in V2_CLASSES:
        put_photo(c, root / str(c) / f"{c:040x}.jpeg")
    put_photo(10, root / "10" / "ffff.jpeg")
    return root


def test_v2_int_folders_are_class_indices(v2_root: Path) -> None:
    ds = ImageNetV2Dataset(v2_root)
    # by int(folder), then file name: "10" after "2", "100" after "10"
    assert [f.split("/")[0] for f in ds.files] == ["0", "2", "10", "10", "100", "999"]
    assert ds.targets == [0, 2, 10, 10, 100, 999]
    assert ds.files[3] == "10/ffff.jpeg"
    assert ds.name == "imagenetv2" and ds.default_labels == "multilabelfy"
    # the images really are of those classes (sample photo of class c in folder c)
    assert ds[4]["target"] == 100


def test_v2_root_may_be_the_parent(v2_root: Path) -> None:
    assert len(ImageNetV2Dataset(v2_root.parent)) == 6


def test_v2_other_variant_has_no_default_labels(tmp_path: Path, put_photo) -> None:
    put_photo(3, tmp_path / "imagenetv2-top-images-format-val" / "3" / "a.jpeg")
    ds = ImageNetV2Dataset(tmp_path, variant="top-images")
    assert ds.default_labels is None and ds.name == "imagenetv2-top-images"
    assert ImageNetV2Dataset.default_labels == "multilabelfy"


@pytest.mark.parametrize("folder", ["1000", "07", "cats"])
def test_v2_rejects_non_class_folders(v2_root: Path, put_photo, folder: str) -> None:
    put_photo(1, v2_root / folder / "x.jpeg")
    with pytest.raises(DataError, match=r"class folder 0..999|not an ImageNetV2"):
        ImageNetV2Dataset(v2_root)


def test_v2_rejects_unknown_variant_and_wrong_root(v2_root: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"unknown ImageNetV2 variant 'threshold-0.8'"):
        ImageNetV2Dataset(v2_root, variant="threshold-0.8")
    with pytest.raises(DataError, match=r"not an ImageNetV2 threshold0.7 folder"):
        ImageNetV2Dataset(v2_root.parent, variant="threshold0.7")
    with pytest.raises(DataError, match=r"does not exist"):
        ImageNetV2Dataset(tmp_path / "nowhere")


# --- folder + labels file ---------------------------------------------------------------


def test_label_file_dataset_nested_json(tmp_path: Path, put_photo) -> None:
    root = tmp_path / "imgs"
    put_photo(5, root / "a" / "x.jpg")
    put_photo(7, root / "b" / "x.jpg")
    put_photo(9, root / "z.JPEG")
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"a/x.jpg": 5, "b/x.jpg": wnids()[7], "z.JPEG": "9", "o": 1}))
    ds = LabelFileDataset(root, labels)
    assert ds.files == ["a/x.jpg", "b/x.jpg", "z.JPEG"]
    assert ds.targets == [5, 7, 9]
    assert isinstance(ds[0]["image"].size, tuple)


def test_label_file_dataset_csv_and_errors(tmp_path: Path, put_photo) -> None:
    root = tmp_path / "imgs"
    put_photo(5, root / "p.jpg")
    put_photo(6, root / "q.jpg")
    labels = tmp_path / "labels.csv"
    labels.write_text("file,label\np.jpg,5\nq.jpg,n01443537\n")
    assert LabelFileDataset(root, labels).targets == [5, 1]
    labels.write_text("file,label\np.jpg,5\n")
    with pytest.raises(DataError, match=r"1 of 2 images have no label .*q.jpg"):
        LabelFileDataset(root, labels)
    labels.write_text("p.jpg,5 6\nq.jpg,1\n")
    with pytest.raises(DataError, match=r"p.jpg has 2 classes"):
        LabelFileDataset(root, labels)
    labels.write_text("p.jpg,1000\nq.jpg,1\n")
    with pytest.raises(DataError, match=r"class index 1000 is outside 0..999"):
        LabelFileDataset(root, labels)
    labels.write_text("p.jpg,n99999999\nq.jpg,1\n")
    with pytest.raises(DataError, match=r"neither a class index nor an ImageNet-1k WordNet id"):
        LabelFileDataset(root, labels)
    binary = tmp_path / "labels.parquet"
    binary.write_bytes(b"PAR1\x00\x01")
    with pytest.raises(DataError, match=r"neither JSON nor CSV"):
        LabelFileDataset(root, binary)


def test_wnid_folder_dataset_still_works(tmp_path: Path, put_photo) -> None:
    put_photo(1, tmp_path / wnids()[1] / "g.JPEG")
    ds = WnidFolderDataset(tmp_path)
    assert ds.targets == [1] and ds.default_labels is None
    assert torch.is_tensor(torch.tensor(ds.targets))
