"""ImageNet-C: the corruptions on real photos (the package's demo photos), the on-the-fly
dataset, and the released folder layout."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagenet_multilabel.core.errors import DataError
from imagenet_multilabel.data.datasets.composites import CompositeDataset
from imagenet_multilabel.data.datasets.corruptions import (
    BENCHMARK,
    CORRUPTIONS,
    NEEDS_EXTRA,
    corrupt,
)
from imagenet_multilabel.data.datasets.folders import ImageNetADataset, WnidFilesDataset
from imagenet_multilabel.data.datasets.imagenet_c import (
    CorruptedDataset,
    ImageNetCFolderDataset,
    center_crop,
    imagenet_c,
)
from imagenet_multilabel.data.images import load_rgb
from tests.data.arrange import demo_arrangement

RANDOM = {"gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"}
RANDOM |= {"glass_blur", "motion_blur", "snow", "frost", "fog", "elastic_transform"}
# The pixel change does not grow with the severity: ImageNet-C's elastic severities 1-2 are
# large smooth warps, 3-5 small local ones; frost weighs image and frost (1, 0.4) ..
# (0.6, 0.75), so a brighter frost and a darker photo partly cancel
NOT_GROWING = {"elastic_transform", "frost"}


@pytest.fixture(scope="module")
def crops() -> list[np.ndarray]:
    """The 224 x 224 centre crops of three demo photos."""
    demo = WnidFilesDataset()
    return [np.asarray(center_crop(load_rgb(demo.root / demo.files[i]))) for i in (0, 37, 81)]


def test_center_crop_is_224_of_the_256_resize() -> None:
    for size in [(500, 375), (333, 500), (224, 224)]:
        image = Image.new("RGB", size, (10, 20, 30))
        assert center_crop(image).size == (224, 224)
    # the crop is central: a landscape image keeps its middle columns
    x = np.zeros((256, 512, 3), dtype=np.uint8)
    x[:, 256:] = 255
    crop = np.asarray(center_crop(Image.fromarray(x)))
    assert crop[:, :112].max() == 0 and crop[:, 112:].min() == 255


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corruption_is_deterministic_and_grows_with_severity(name: str, crops) -> None:
    for image in crops:
        outs = [corrupt(image, name, s, seed=7) for s in range(1, 6)]
        for out in outs:
            assert out.dtype == np.uint8 and out.shape == image.shape
        # the same seed gives the same image; severities differ from each other and from clean
        assert np.array_equal(outs[2], corrupt(image, name, 3, seed=7))
        for a in range(5):
            assert not np.array_equal(outs[a], image)
            for b in range(a + 1, 5):
                assert not np.array_equal(outs[a], outs[b]), (a + 1, b + 1)
        other_seed = corrupt(image, name, 3, seed=8)
        assert np.array_equal(other_seed, outs[2]) == (name not in RANDOM)
    # averaged over the photos, the change grows with the severity
    change = [
        np.mean([np.abs(corrupt(im, name, s, 7).astype(float) - im).mean() for im in crops])
        for s in range(1, 6)
    ]
    assert (change == sorted(change)) != (name in NOT_GROWING), change


def test_all_fifteen_of_imagenet_c_on_the_fly() -> None:
    assert set(BENCHMARK) <= set(CORRUPTIONS) and len(BENCHMARK) == 15
    assert set(CORRUPTIONS) - set(BENCHMARK) == {"speckle_noise", "gaussian_blur"}


def test_the_extra_is_named_when_missing(crops, monkeypatch) -> None:
    """Without corrupt-tta (an import that fails), the seven that need the extra say which
    extra to install, before any work; the ten of numpy and Pillow still work."""
    monkeypatch.setitem(sys.modules, "corrupt_tta", None)
    for name in NEEDS_EXTRA:
        with pytest.raises(DataError, match=r"pip install 'imagenet-multilabel\[imagenet_c\]'"):
            imagenet_c(base="demo", corruption=name, severity=1)
    with pytest.raises(DataError, match=r"needs corrupt_tta: pip install"):
        corrupt(crops[0], "contrast", 1, implementation="corrupt_tta")
    assert corrupt(crops[0], "contrast", 1).shape == crops[0].shape


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corrupt_tta_implementation_is_seeded(name: str, crops) -> None:
    """corrupt-tta's functions, seeded per image through numpy's global state (restored
    after): the same seed gives the same image, except its impulse noise (scikit-image
    draws from its own unseeded generator)."""
    state = np.random.get_state()
    a = corrupt(crops[0], name, 2, seed=3, implementation="corrupt_tta")
    b = corrupt(crops[0], name, 2, seed=3, implementation="corrupt_tta")
    assert a.dtype == np.uint8 and a.shape == crops[0].shape
    assert np.array_equal(a, b) == (name != "impulse_noise")
    assert np.array_equal(np.random.get_state()[1], state[1])


def test_corrupt_rejects_bad_input(crops) -> None:
    with pytest.raises(DataError, match=r"unknown corruption 'fogg'"):
        corrupt(crops[0], "fogg", 3)
    for severity in (0, 6, "3", 2.0, True):
        with pytest.raises(DataError, match=r"data.severity must be an integer 1..5"):
            corrupt(crops[0], "contrast", severity)
    with pytest.raises(ValueError, match="uint8 H x W x 3"):
        corrupt(crops[0].astype(np.float32), "contrast", 3)


def test_on_the_fly_dataset_is_seeded_per_image(crops) -> None:
    ds = imagenet_c(base="demo", corruption="shot_noise", severity=4, seed=10)
    assert isinstance(ds, CorruptedDataset)
    assert ds.name == "imagenet_c-shot_noise-4" and len(ds) == 100
    assert ds.files == WnidFilesDataset().files and ds.default_labels is None
    # item 37 is corrupted with seed 10 + 37, whatever was read before
    late = np.asarray(ds[37]["image"])
    for i in (5, 99, 0):
        ds[i]
    assert np.array_equal(np.asarray(ds[37]["image"]), late)
    assert np.array_equal(late, corrupt(crops[1], "shot_noise", 4, seed=47))
    other = imagenet_c(base="demo", corruption="shot_noise", severity=4, seed=11)
    assert not np.array_equal(np.asarray(other[37]["image"]), late)


def test_on_the_fly_keeps_the_base_subset_and_applies_the_transform(tmp_path: Path) -> None:
    base = ImageNetADataset(demo_arrangement(tmp_path / "imagenet-a"))
    ds = imagenet_c(
        base=base, corruption="pixelate", severity=2, transform=lambda im: np.asarray(im).sum()
    )
    assert ds.class_subset == base.class_subset and ds.targets == base.targets
    item = ds[3]
    assert isinstance(item["image"], np.integer) and item["target"] == base.targets[3]
    # a base name and root select the dataset too
    named = imagenet_c(root=tmp_path, base="imagenet_a", corruption="pixelate", severity=2)
    assert named.files == ds.files and named.class_subset == base.class_subset


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"corruption": "spatter"}, r"spatter is not implemented on the fly .*prepared=true"),
        ({"base": "demo", "implementation": "cv"}, r"data.implementation='cv' is unknown"),
        ({"severity": 9}, r"data.severity must be an integer 1..5"),
        ({"base": "nope"}, r"unknown data.base 'nope': use one of imagenet, folder, demo"),
        ({}, r"corrupts ILSVRC2012 val on the fly: pass data.root="),
        ({"base": "demo", "devkit": "/x"}, r"data.devkit and data.labels_file are for"),
        ({"prepared": True}, r"no dataset folder given for data=imagenet_c"),
    ],
)
def test_imagenet_c_config_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(DataError, match=match) as info:
        imagenet_c(**kwargs)
    assert "\n" not in str(info.value)


def test_a_composite_base_is_refused() -> None:
    composites = CompositeDataset(WnidFilesDataset(), num_images=3)
    with pytest.raises(DataError, match="cannot corrupt patchml"):
        imagenet_c(base=composites, corruption="contrast", severity=1)
    with pytest.raises(DataError, match="set them inside data.base"):
        imagenet_c(root="/x", base=WnidFilesDataset(), corruption="contrast", severity=1)


def _released(root: Path, corruption: str, severity: int, photos: list[Path]) -> Path:
    """The released layout with demo photos under ImageNet val file names."""
    for n, photo in enumerate(photos, start=1):
        folder = root / corruption / str(severity) / photo.name.split("_", 1)[0]
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, folder / f"ILSVRC2012_val_{n:08d}.JPEG")
    return root


def test_released_folders_load(tmp_path: Path) -> None:
    photos = sorted(WnidFilesDataset().root.glob("*.JPEG"))[:6]
    root = _released(tmp_path / "ImageNet-C", "fog", 2, photos)
    _released(root, "frost", 5, photos[:2])
    ds = imagenet_c(root=root, corruption="fog", severity=2, prepared=True)
    assert isinstance(ds, ImageNetCFolderDataset) and len(ds) == 6
    assert ds.name == "imagenet_c-fog-2" and ds.default_labels == "real"
    assert ds.root == root / "fog" / "2" and ds.file_names[0] == "ILSVRC2012_val_00000001.JPEG"
    assert ds[0]["image"].mode == "RGB"
    # the corruption folder itself is accepted as the root
    assert imagenet_c(root=root / "fog", corruption="fog", severity=2, prepared=True).files == (
        ds.files
    )
    with pytest.raises(DataError, match=r"has no fog/4/ folder \(it has fog, frost\)") as info:
        imagenet_c(root=root, corruption="fog", severity=4, prepared=True)
    assert "prepare imagenet_c --root" in str(info.value) and "--set weather" in str(info.value)
    with pytest.raises(DataError, match="unknown corruption 'fogg'"):
        imagenet_c(root=root, corruption="fogg", severity=2, prepared=True)
