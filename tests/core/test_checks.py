"""preflight: every bad setting is one UserError line before anything slow; good ones pass."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch

from imagenet_multilabel.checks import check_run_settings
from imagenet_multilabel.core.errors import UserError
from imagenet_multilabel.data.datasets.folders import DEMO_ROOT
from imagenet_multilabel.models.checks import check_input_sizes
from imagenet_multilabel.tasks.evaluate import evaluate


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("seed=abc", "seed='abc' is not valid"),
        ("seed=-1", "seed=-1 is not valid"),
        ("seed=4294967296", "seed=4294967296 is not valid"),
        ("channels_last=maybe", "channels_last='maybe' is not valid: give true or false"),
        ("compile=yes", "compile='yes' is not valid"),
        ("normalize_on_device=0.5", "normalize_on_device=0.5 is not valid"),
        ("keep_freed_memory=1", "keep_freed_memory=1 is not valid"),
        ("preprocess.crop_mode=foo", "preprocess.crop_mode='foo' is unknown"),
        ("preprocess.hflip=maybe", "preprocess.hflip='maybe' must be true or false"),
        ("trainer.devices=0", "trainer.devices=0 is not valid"),
        ("trainer.devices=-2", "trainer.devices=-2 is not valid"),
        ("trainer.devices=abc", "trainer.devices='abc' is not valid"),
        ("trainer.precision=foo", "trainer.precision='foo' is unknown"),
        ("trainer.accelerator=foo", "trainer.accelerator='foo' is unknown"),
        ("trainer.precision=16-mixed", "trainer.precision=16-mixed (float16 autocast) needs a GPU"),
        ("labels=file", "labels=file needs labels.path: pass labels.path="),
        ("labels=shankar", "labels=shankar needs labels.path"),
        # before the missing data.root: the variant is a setting, the folder comes next
        ("data=imagenetv2 data.variant=foo", "unknown ImageNetV2 variant 'foo'"),
    ],
)
def test_bad_settings_are_one_line(compose_cfg, override: str, expected: str) -> None:
    cfg = compose_cfg("model=test_tiny", *override.split())
    with pytest.raises(UserError, match="^" + re.escape(expected)):
        check_run_settings(cfg)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_gpu_trainer_without_a_gpu(compose_cfg) -> None:
    with pytest.raises(UserError, match="no usable GPU: use trainer=cpu"):
        check_run_settings(compose_cfg("model=test_tiny", "trainer=gpu"))


@pytest.mark.parametrize(
    "overrides",
    [
        (),
        ("labels=real",),
        ("labels=multilabelfy",),
        ("labels=none",),
        ("labels=file", "labels.path=/some/labels.json"),
        ("trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"),
        ("trainer.devices=auto",),
        ("trainer.devices=-1",),
        ("trainer.precision=bf16-mixed", "seed=4294967295"),
        ("trainer.precision=16-true", "channels_last=false", "compile=false"),
        ("preprocess.crop_mode=squash",),
    ],
)
def test_good_settings_pass(compose_cfg, overrides: tuple[str, ...]) -> None:
    check_run_settings(compose_cfg("model=test_tiny", *overrides))


def test_labels_real_asked_for_by_name_is_used(compose_cfg, tmp_path: Path) -> None:
    """labels=real (path null: timm's copy) on a folder of ReaL's file names is scored with
    ReaL (the check once took the null path for a missing file and refused the run)."""
    photos = sorted(DEMO_ROOT.glob("n*.JPEG"))[:3]
    for number, photo in enumerate(photos, start=1):
        dest = tmp_path / "val" / photo.name.split("_")[0] / f"ILSVRC2012_val_{number:08d}.JPEG"
        dest.parent.mkdir(parents=True)
        shutil.copy(photo, dest)
    cfg = compose_cfg(
        "model=test_tiny", "data=folder", f"data.root={tmp_path / 'val'}", "labels=real"
    )
    metrics = evaluate(cfg)
    assert {"folder/real_top1", "folder/vartopk_strict"} <= set(metrics)


@pytest.fixture(scope="module")
def vit() -> torch.nn.Module:
    import timm

    return timm.create_model("vit_tiny_patch16_224")


def test_fixed_size_model_on_composites(vit) -> None:
    """A ViT without dynamic_img_size on 224x448 composites failed in the forward pass with
    an AssertionError traceback."""
    from imagenet_multilabel.data.datasets.composites import CompositeDataset
    from imagenet_multilabel.data.datasets.folders import WnidFilesDataset

    base = WnidFilesDataset()
    pre = {"input_size": (3, 224, 224)}
    sets = {"demo": base, "patchml": CompositeDataset(base, num_images=2)}
    with pytest.raises(
        UserError,
        match=r"takes 224x224 images only, but dataset 'patchml' has 224x448: pass "
        r"model.kwargs.dynamic_img_size=true \(timm ViTs\), or data.squeeze=true",
    ):
        check_input_sizes(vit, pre, sets)
    check_input_sizes(vit, pre, {"patchml": CompositeDataset(base, num_images=2, squeeze=True)})
    with pytest.raises(UserError, match=r"dataset 'demo' has 256x256: .* preprocess.img_size"):
        check_input_sizes(vit, {"input_size": (3, 256, 256)}, {"demo": base})


def test_models_that_take_any_size_pass(vit) -> None:
    import timm

    from imagenet_multilabel.data.datasets.composites import CompositeDataset
    from imagenet_multilabel.data.datasets.folders import WnidFilesDataset

    sets = {"patchml": CompositeDataset(WnidFilesDataset(), num_images=2)}
    dynamic = timm.create_model("vit_tiny_patch16_224", dynamic_img_size=True)
    for model in (dynamic, timm.create_model("test_efficientnet")):
        check_input_sizes(model, {"input_size": (3, 224, 224)}, sets)
