"""``loss.soft_labels``: fine-tuning on photos that ReaL's raters rated, each rated label's
score is its target weight; photos that were not rated keep their 0/1 labels. The photos
are demo JPEGs given the val names of images of their class (there are no val photos
here): the targets are checked, not what the model learns."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from imagenet_multilabel.checks import check_train_settings
from imagenet_multilabel.core.classes import wnids
from imagenet_multilabel.core.errors import UserError
from imagenet_multilabel.data.labels.originals import original_labels
from imagenet_multilabel.data.labels.ratings import REAL_SCORES
from imagenet_multilabel.runs.rundir import RunDir
from imagenet_multilabel.tasks.train import build_run, train
from imagenet_multilabel.training.fit import fit_parts
from imagenet_multilabel.training.losses import soft_target
from tests.helpers import DEMO_CLASS, DEMO_CLASSES, REAL_JSON
from tests.tasks.train_helpers import FAST

RATED, NOT_RATED = 16, 8


def _scores() -> dict[str, dict[int, float]]:
    """Val file name -> {class: raters' score}, read from the shipped file with numpy."""
    with np.load(REAL_SCORES, allow_pickle=False) as data:
        image, label, score = data["image"], data["label"], data["score"]
    out: dict[str, dict[int, float]] = {}
    for n, c, s in zip(image.tolist(), label.tolist(), score.tolist(), strict=True):
        out.setdefault(f"ILSVRC2012_val_{n:08d}.JPEG", {})[c] = s
    return out


SCORES = _scores()


@pytest.fixture(scope="module")
def val_photos(tmp_path_factory) -> Path:
    """ImageNet val layout (``<wnid>/ILSVRC2012_val_*.JPEG``): 16 demo photos under the
    names of rated images of their class with a score strictly between 0 and 1, and 8
    under names of images that were not rated."""
    root = tmp_path_factory.mktemp("val")
    by_class: dict[int, list[str]] = {}
    for name, cls in sorted(original_labels().items()):
        by_class.setdefault(cls, []).append(name)
    rated = not_rated = 0
    for cls in DEMO_CLASSES:
        names = by_class.get(cls, [])
        fractional = [n for n in names if any(0.05 < s < 0.95 for s in SCORES.get(n, {}).values())]
        plain = [n for n in names if n not in SCORES]
        if fractional and rated < RATED:
            name, rated = fractional[0], rated + 1
        elif plain and not_rated < NOT_RATED:
            name, not_rated = plain[0], not_rated + 1
        else:
            continue
        (root / wnids()[cls]).mkdir()
        shutil.copy(DEMO_CLASS[cls], root / wnids()[cls] / name)
    assert (rated, not_rated) == (RATED, NOT_RATED)
    return root


def _expected(name: str, real: list[list[int]]) -> torch.Tensor:
    """The soft target of val image ``name``: its rated labels' scores, else its ReaL 0/1."""
    row = torch.zeros(1000)
    if name in SCORES:
        for cls, score in SCORES[name].items():
            row[cls] = score
    else:
        row[real[int(name[15:23]) - 1]] = 1.0
    return row


def _settings(root: Path, *overrides: str) -> tuple[str, ...]:
    """The tiny model on the photos with ReaL (or the label set and composites of
    ``overrides``)."""
    chosen = {o.split("=", 1)[0] for o in overrides}
    defaults = [
        o for o in ("labels=real", "composites.enabled=false") if o.split("=")[0] not in chosen
    ]
    return (
        *FAST,
        "data=imagenet",
        f"data.root={root}",
        *defaults,
        "split.heldout_classes=4",
        "trainer.max_epochs=1",
        *overrides,
    )


@pytest.mark.parametrize("loss", ["bce", "soft_ce"])
def test_the_training_batches_carry_the_raters_scores(compose_cfg, val_photos, loss) -> None:
    cfg = compose_cfg(
        *_settings(val_photos, f"loss={loss}", "loss.soft_labels=true"), config_name="train"
    )
    run = build_run(cfg)
    _, datamodule = fit_parts(cfg, run.backbone, run.scorer, run.sets, run.plan)
    real = json.loads(REAL_JSON.read_text())
    files = [f.rsplit("/", 1)[-1] for f in run.sets.train.files]
    assert sum(f in SCORES for f in files) > 0 and sum(f not in SCORES for f in files) > 0
    unseen = list(run.sets.split.unseen_classes)
    seen = 0
    for batch in datamodule.train_dataloader():
        expected = torch.stack([_expected(files[i], real) for i in batch["index"].tolist()])
        assert torch.allclose(batch["valid"].float(), expected)
        assert not (batch["valid"][:, unseen] > 0).any()  # never trains a held-out class
        logits = torch.randn(len(expected), 1000)
        dense = soft_target(run.loss.target, batch["valid"])
        want = expected / expected.sum(dim=1, keepdim=True) if loss == "soft_ce" else expected
        assert torch.allclose(dense, want)
        if loss == "bce":
            got = run.loss(logits, batch["target"], batch["valid"])
            assert torch.allclose(got, F.binary_cross_entropy_with_logits(logits, expected))
        seen += len(expected)
    assert seen == len(files)
    with_scores = sum(f in SCORES for f in files)
    assert run.sets.info["soft_labels"] == {"train_images_with_scores": with_scores}


def test_without_the_option_the_targets_are_the_label_sets(compose_cfg, val_photos) -> None:
    cfg = compose_cfg(*_settings(val_photos, "loss=bce"), config_name="train")
    run = build_run(cfg)
    assert run.sets.train_soft is None and run.sets.train_target.dtype == torch.bool
    assert "soft_labels" not in run.sets.info


def test_a_fit_with_soft_labels_runs_end_to_end(compose_cfg, val_photos) -> None:
    cfg = compose_cfg(
        *_settings(val_photos, "loss=soft_ce_lwf", "loss.soft_labels=true"), config_name="train"
    )
    metrics = train(cfg)
    run = RunDir(cfg.paths.output_dir)
    assert run.info["loss"]["soft_labels"] is True
    assert run.info["training_data"]["soft_labels"]["train_images_with_scores"] > 0
    assert np.isfinite(metrics["heldout_classes/finetuned.real_top1"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("loss=asl",), "loss.soft_labels needs a loss that takes soft targets .* 'asl'"),
        (("loss=ce",), "loss.soft_labels needs a loss that takes soft targets .* 'ce'"),
        (("loss=bce", "labels=tsipras"), "raters' scores .* 'tsipras' has none"),
        (("loss=bce", "composites.enabled=true"), "composites are labelled by their tiles'"),
    ],
)
def test_soft_labels_where_they_cannot_apply_is_one_error(
    compose_cfg, val_photos, overrides, message
) -> None:
    settings = _settings(val_photos, "loss.soft_labels=true", *overrides)
    cfg = compose_cfg(*settings, config_name="train")
    with pytest.raises(UserError, match=message):
        check_train_settings(cfg)
        train(cfg)
    assert not (Path(cfg.paths.output_dir) / "metrics.json").exists()


def test_a_soft_labels_value_that_is_not_a_switch_is_refused(compose_cfg, val_photos) -> None:
    cfg = compose_cfg(
        *_settings(val_photos, "loss=bce", "loss.soft_labels=maybe"), config_name="train"
    )
    with pytest.raises(
        UserError, match="loss.soft_labels='maybe' is not valid: give true or false"
    ):
        check_train_settings(cfg)
