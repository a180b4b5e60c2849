"""The fast data path (uint8 crops, normalised per batch on the device) gives the model
exactly the input of timm's per-image transform, and the evaluation's predictions equal a
straightforward decode + transform + forward on real photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from timm.data import create_transform, resolve_data_config

from imagenet_multilabel.data.images import load_rgb
from imagenet_multilabel.data.loading.transforms import (
    Normalize,
    eval_transform,
    resolve_preprocessing,
)
from imagenet_multilabel.models.backbones import create_backbone
from imagenet_multilabel.runs.rundir import read_predictions
from imagenet_multilabel.tasks.evaluate import evaluate
from tests.helpers import HAVE_SAMPLE, photo, photo_name

PREPROCESSING = {
    "input_size": (3, 224, 224),
    "interpolation": "bicubic",
    "crop_pct": 0.875,
    "crop_mode": "center",
}


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Image.Image]:
    """11 real photos and a grayscale one of 350 x 156 (odd aspect, one channel)."""
    photos = [photo(c) for c in range(0, 1000, 97)]
    if HAVE_SAMPLE:
        gray = photo(405)  # the sample's airship: grayscale, 350 x 156
    else:  # the same kind of file, written from a demo photo
        gray = tmp_path_factory.mktemp("gray") / "gray.JPEG"
        Image.open(photos[1]).convert("L").resize((350, 156), Image.Resampling.BICUBIC).save(gray)
    with Image.open(gray) as im:
        assert im.mode == "L" and im.size == (350, 156)
    return [load_rgb(p) for p in [*photos, gray]]


@pytest.mark.parametrize(
    ("mean", "std"),
    [((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)), ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))],
)
def test_batch_normalize_is_bitwise_per_image_transform(images, mean, std) -> None:
    pp = {**PREPROCESSING, "mean": mean, "std": std}
    reference = torch.stack([eval_transform(pp)(im) for im in images])
    crops = torch.stack([eval_transform(pp, normalize=False)(im) for im in images])
    assert crops.dtype == torch.uint8
    for memory_format in (torch.contiguous_format, torch.channels_last):
        fast = Normalize(mean, std)(crops.contiguous(memory_format=memory_format))
        assert fast.dtype == torch.float32
        assert fast.is_contiguous(memory_format=memory_format)
        assert torch.equal(fast, reference)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_batch_normalize_is_bitwise_for_every_pixel_value(memory_format) -> None:
    """Exhaustive: every uint8 value in every channel, at several positions of the planes,
    equals torchvision's ToTensor + Normalize (which timm's eval transform ends with)."""
    from torchvision import transforms

    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    rng = np.random.default_rng(0)
    # 3 images of 16 x 48: each channel holds all 256 values 3 times, shuffled differently
    values = np.stack([rng.permutation(np.tile(np.arange(256), 9)) for _ in range(3)], -1)
    pixels = values.reshape(3, 16, 48, 3).astype(np.uint8)
    reference = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])
    expected = torch.stack([reference(Image.fromarray(p)) for p in pixels])
    crops = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous(memory_format=memory_format)
    assert torch.equal(Normalize(mean, std)(crops), expected)


def test_normalize_refuses_float_input() -> None:
    with pytest.raises(TypeError, match="uint8"):
        Normalize((0.5,) * 3, (0.5,) * 3)(torch.zeros(1, 3, 4, 4))


def test_speed_options_that_change_results_are_off_by_default(compose_cfg) -> None:
    cfg = compose_cfg()
    assert cfg.compile is False
    assert cfg.normalize_on_device is True  # exact: see the test above
    assert cfg.trainer.precision == "32-true"


def test_default_predictions_equal_plain_reference(compose_cfg, tmp_path: Path) -> None:
    """Default config, default model: logits as from PIL decode -> timm transform -> NCHW
    forward one image at a time (no channels-last, no batching, no device normalisation)."""
    classes = range(5, 1000, 200)
    photos = [photo(c) for c in classes]
    root = tmp_path / "flat"
    root.mkdir()
    for c, p in zip(classes, photos, strict=True):
        (root / photo_name(c)).symlink_to(p)
    cfg = compose_cfg("data=demo", f"data.root={root}", "batch_size=2")
    evaluate(cfg)
    preds = read_predictions(Path(cfg.paths.output_dir) / "predictions" / "demo.npz")

    model, _ = create_backbone(cfg.model.name, weights=cfg.model.weights)
    transform = create_transform(**resolve_data_config(model=model), is_training=False)
    assert resolve_preprocessing(model)["interpolation"] == "bicubic"
    with torch.inference_mode():
        reference = torch.cat(
            [model(transform(Image.open(p).convert("RGB"))[None]) for p in photos]
        ).numpy()
    assert list(preds["path"]) == [photo_name(c) for c in classes]
    np.testing.assert_array_equal(preds["logits"].argmax(1), reference.argmax(1))
    np.testing.assert_array_equal(
        np.argsort(-preds["logits"], 1)[:, :5], np.argsort(-reference, 1)[:, :5]
    )
    np.testing.assert_allclose(preds["logits"], reference, atol=1e-4, rtol=0)
