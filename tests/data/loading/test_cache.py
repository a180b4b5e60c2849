"""The decode cache: the model input bitwise as decoding gives it, keyed by images and
preprocessing, filled atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import timm
import torch

from imagenet_multilabel.core.errors import UserError
from imagenet_multilabel.data.datasets.composites import CompositeDataset
from imagenet_multilabel.data.datasets.folders import WnidFilesDataset
from imagenet_multilabel.data.loading import cache as decode_cache
from imagenet_multilabel.data.loading.transforms import eval_transform, resolve_preprocessing
from imagenet_multilabel.runs.rundir import RunDir, read_predictions
from imagenet_multilabel.tasks.evaluate import evaluate


@pytest.fixture(scope="module")
def preprocessing() -> dict:
    return resolve_preprocessing(timm.create_model("test_efficientnet"))


def photos(tmp_path: Path, n: int = 12) -> Path:
    root = tmp_path / "photos"
    root.mkdir()
    for src in sorted(decode_cache.Path(WnidFilesDataset().root).glob("*.JPEG"))[:n]:
        (root / src.name).write_bytes(src.read_bytes())
    return root


def assert_same_items(cached, dataset) -> None:
    assert len(cached) == len(dataset)
    for i in range(len(dataset)):
        a, b = cached[i], dataset[i]
        assert a["image"].dtype == torch.uint8 and torch.equal(a["image"], b["image"]), i
        assert (a["target"], a["index"]) == (b["target"], b["index"])


def test_cached_crops_are_the_decoded_ones(tmp_path: Path, preprocessing: dict) -> None:
    transform = eval_transform(preprocessing, normalize=False)
    dataset = WnidFilesDataset(photos(tmp_path), transform=transform)
    cached, info = decode_cache.cached(dataset, tmp_path / "cache", workers=2, batch_size=5)
    assert info["hit"] is False and info["fill_seconds"] > 0
    assert_same_items(cached, dataset)
    assert cached.files == dataset.files and cached.name == "demo"  # the dataset's attributes
    again, info = decode_cache.cached(dataset, tmp_path / "cache", workers=0)
    assert info == {"path": info["path"], "hit": True, "fill_seconds": 0.0}
    assert_same_items(again, dataset)
    meta = json.loads((Path(info["path"]) / "meta.json").read_text())
    assert meta["shape"] == [12, 3, 160, 160]
    assert meta["key"]["transform"] == repr(transform)
    assert [p.name for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")] == [
        Path(info["path"]).name
    ]


def test_composites_are_cached_too(tmp_path: Path, preprocessing: dict) -> None:
    transform = eval_transform(preprocessing, normalize=False)
    base = WnidFilesDataset(photos(tmp_path))
    grid = CompositeDataset(base, rows=1, cols=2, num_images=5, transform=transform)
    cached, _ = decode_cache.cached(grid, tmp_path / "cache", workers=0)
    assert_same_items(cached, grid)
    other = CompositeDataset(base, rows=2, cols=1, num_images=5, transform=transform)
    assert decode_cache.cached(other, tmp_path / "cache", workers=0)[1]["hit"] is False


def test_the_key_follows_images_and_preprocessing(tmp_path: Path, preprocessing: dict) -> None:
    root = photos(tmp_path)
    transform = eval_transform(preprocessing, normalize=False)
    digest = decode_cache.key_digest(decode_cache.cache_key(WnidFilesDataset(root), transform))
    other = eval_transform({**preprocessing, "crop_pct": 1.0}, normalize=False)
    assert decode_cache.key_digest(decode_cache.cache_key(WnidFilesDataset(root), other)) != digest
    st = os.stat(next(root.iterdir()))
    os.utime(next(root.iterdir()), ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert (
        decode_cache.key_digest(decode_cache.cache_key(WnidFilesDataset(root), transform)) != digest
    )
    renamed = WnidFilesDataset(root, name="other")  # a name does not change the pixels
    assert decode_cache.cache_key(renamed, transform) == decode_cache.cache_key(
        WnidFilesDataset(root), transform
    )


def test_a_wrong_entry_is_filled_again_and_a_dead_fill_removed(
    tmp_path: Path, preprocessing: dict
) -> None:
    dataset = WnidFilesDataset(
        photos(tmp_path, 4), transform=eval_transform(preprocessing, normalize=False)
    )
    root = tmp_path / "cache"
    _, info = decode_cache.cached(dataset, root, workers=0)
    folder = Path(info["path"])
    meta = json.loads((folder / "meta.json").read_text())
    meta["key"]["transform"] = "something else"
    (folder / "meta.json").write_text(json.dumps(meta))
    dead = root / f".fill-{folder.name}-999999999"  # a fill killed midway: no such process
    dead.mkdir()
    np.save(dead / "images.npy", np.zeros(3, np.uint8))
    cached, info = decode_cache.cached(dataset, root, workers=0)
    assert info["hit"] is False and not dead.exists()
    assert_same_items(cached, dataset)


def test_normalised_images_cannot_be_cached(tmp_path: Path, preprocessing: dict) -> None:
    dataset = WnidFilesDataset(photos(tmp_path, 2), transform=eval_transform(preprocessing))
    with pytest.raises(UserError, match="normalize_on_device=true"):
        decode_cache.cached(dataset, tmp_path / "cache", workers=0)
    assert not [p for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")]


@pytest.mark.slow
def test_evaluation_from_the_cache_gives_identical_logits(compose_cfg, tmp_path: Path) -> None:
    args = ("model=test_tiny", "data=patchml", "data.num_images=8", "batch_size=4")
    plain = compose_cfg(*args)
    evaluate(plain)
    runs = []
    for _ in range(2):  # fill, then hit
        cfg = compose_cfg(*args, f"data.cache={tmp_path / 'cache'}")
        evaluate(cfg)
        runs.append(Path(cfg.paths.output_dir))
    assert [RunDir(r).info["decode_cache"]["patchml"]["hit"] for r in runs] == [False, True]
    expected = read_predictions(Path(plain.paths.output_dir) / "predictions" / "patchml.npz")
    for run in runs:
        got = read_predictions(run / "predictions" / "patchml.npz")
        assert np.array_equal(got["logits"], expected["logits"])  # bit for bit
        assert np.array_equal(got["valid"], expected["valid"])
    with pytest.raises(UserError, match="needs normalize_on_device=true"):
        evaluate(compose_cfg(*args, f"data.cache={tmp_path / 'c'}", "normalize_on_device=false"))
