"""builders: the composed config of conf/ turned into the backbone, the datasets with their
label sets, the loader settings and the scorer, as every task builds them."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from PIL import Image

from imagenet_multilabel.builders import (
    build_backbone,
    build_dataset,
    build_datasets,
    build_scorer,
)
from imagenet_multilabel.core.config import dataset_specs
from imagenet_multilabel.core.errors import UserError
from imagenet_multilabel.scoring.heads import MultiLabelHead, SingleLabelHead
from imagenet_multilabel.scoring.metrics.single import single_label_metrics
from tests.helpers import DEMO_PHOTOS, make_wnid_folders

CLASSES = [0, 83, 166]


def test_the_backbone_is_the_timm_model_with_its_resolved_preprocessing(compose_cfg) -> None:
    cfg = compose_cfg("model=test_tiny")  # timm's test_efficientnet, random weights
    backbone = build_backbone(cfg)
    assert isinstance(backbone.model, timm.models.efficientnet.EfficientNet)
    assert not backbone.model.training
    reference = timm.create_model("test_efficientnet", pretrained=False)
    assert backbone.record() == {
        "name": "test_efficientnet",
        "weights": "none",
        "num_params": sum(p.numel() for p in reference.parameters()),
    }
    timm_config = timm.data.resolve_data_config({}, model=reference)
    for key in ("input_size", "interpolation", "mean", "std"):
        assert backbone.preprocessing[key] == timm_config[key], key

    small = build_backbone(compose_cfg("model=test_tiny", "preprocess.img_size=96"))
    assert tuple(small.preprocessing["input_size"]) == (3, 96, 96)
    with Image.open(DEMO_PHOTOS[0]) as im:
        x = small.eval_transform()(im.convert("RGB"))
    assert x.shape == (3, 96, 96) and x.dtype == torch.float32
    with torch.inference_mode():
        assert small.model(x[None]).shape == (1, 1000)


def test_a_folder_dataset_is_built_from_the_data_config(compose_cfg, tmp_path: Path) -> None:
    root = make_wnid_folders(tmp_path / "val", CLASSES)
    cfg = compose_cfg("model=test_tiny", "data=folder", f"data.root={root}")
    (spec,) = dataset_specs(cfg.data).values()  # data=folder: one dataset
    dataset = build_dataset(spec, None)
    assert (dataset.name, len(dataset)) == ("folder", 3)
    assert [dataset[i]["target"] for i in range(3)] == CLASSES
    assert isinstance(dataset[0]["image"], Image.Image)  # no transform: the decoded photo

    transform = build_backbone(cfg).eval_transform()
    sets = build_datasets(cfg.data, cfg.get("labels"), transform)
    assert list(sets) == ["folder"]
    record = sets["folder"].record()
    assert {k: record[k] for k in ("class", "root", "num_images", "labels")} == {
        "class": "WnidFolderDataset",
        "root": str(root),
        "num_images": 3,
        "labels": "none",
    }
    assert record["fingerprint"]["num_files"] == 3
    assert sets["folder"].valid is None
    assert sets["folder"].dataset[0]["image"].shape[0] == 3  # the backbone's transform


def test_the_default_datasets_and_their_label_sets(compose_cfg) -> None:
    """The default data: the 100 demo photos (no label set) and 50 composites of two of
    them (their two classes, known by construction)."""
    sets = build_datasets(compose_cfg().data, compose_cfg().get("labels"), None)
    assert list(sets) == ["demo", "patchml"]
    assert (len(sets["demo"].dataset), sets["demo"].valid) == (100, None)
    assert sets["patchml"].record()["labels"] == "intrinsic"
    valid = sets["patchml"].valid
    assert valid.shape == (50, 1000) and valid.sum(1).tolist() == [2] * 50


def test_two_datasets_of_one_name_are_refused(compose_cfg) -> None:
    cfg = compose_cfg("data.patchml.name=demo")
    with pytest.raises(UserError, match="two datasets are named 'demo'"):
        build_datasets(cfg.data, cfg.get("labels"), None)


def test_the_scorer_has_the_heads_of_the_head_config(compose_cfg) -> None:
    heads = build_scorer(compose_cfg().head).heads  # head=default
    assert list(heads) == ["single", "multilabel"]
    assert isinstance(heads["single"].head, SingleLabelHead) and not heads["single"].optional
    assert isinstance(heads["multilabel"].head, MultiLabelHead) and heads["multilabel"].optional
    assert list(build_scorer(compose_cfg("head=single").head).heads) == ["single"]
    prefixed = build_scorer(compose_cfg("head=single", "+head.single.prefix=s.").head)
    logits, target = torch.eye(3, 1000) * 5, torch.tensor([0, 1, 0])  # image 2's top-1: 2
    metrics = prefixed.score("d", logits, target, None)
    single = single_label_metrics(logits, target)
    assert metrics == {"num_images": 3, **{f"s.{k}": v for k, v in single.items()}}
    assert metrics["s.top1"] == pytest.approx(200 / 3)
