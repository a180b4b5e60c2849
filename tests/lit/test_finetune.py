"""FineTuneModule pieces: what is trained, the head anchor, the loss targets (with the
pretrained probabilities of unseen classes kept)."""

from __future__ import annotations

import math

import pytest
import timm
import torch
from omegaconf import OmegaConf

from imagenet_multilabel.core.config import CONFIG_DIR
from imagenet_multilabel.core.errors import UserError
from imagenet_multilabel.data.loading.transforms import Normalize
from imagenet_multilabel.lit.finetune import FineTuneModule, HeadAnchor
from imagenet_multilabel.scoring.heads import SingleLabelHead
from imagenet_multilabel.scoring.scorer import HeadSpec, Scorer
from imagenet_multilabel.training.losses import Loss, build_loss, finite_or_raise, soft_target
from imagenet_multilabel.training.params import build_optimizer, set_trainable


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return timm.create_model("test_efficientnet")


def test_modes_train_the_classifier_the_last_stages_or_everything(model) -> None:
    head = set_trainable(model, "head")
    assert head.num_trained == sum(p.numel() for p in model.get_classifier().parameters())
    assert head.frozen_modules == [model]
    last = set_trainable(model, "last_n", last_n=1)
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trained and all(
        n.startswith(("blocks.4", "conv_head", "bn2", "classifier")) for n in trained
    )
    assert (
        model.conv_stem in last.frozen_modules and model.get_classifier() not in last.frozen_modules
    )
    full = set_trainable(model, "full")
    assert (
        full.num_trained == sum(p.numel() for p in model.parameters()) and not full.frozen_modules
    )
    with pytest.raises(UserError, match="choose 1.."):
        set_trainable(model, "last_n", last_n=99)


def test_layer_decay_gives_earlier_stages_smaller_lrs(model) -> None:
    set_trainable(model, "full")
    opt = build_optimizer(
        model, {"opt": "adamw", "lr": 1e-3, "weight_decay": 0.05, "layer_decay": 0.5}
    )
    lrs = sorted({g["lr"] * g.get("lr_scale", 1.0) for g in opt.param_groups})
    assert len(lrs) > 2 and lrs[-1] == pytest.approx(1e-3)


def test_anchor_trains_only_seen_rows_and_keeps_the_others_exact() -> None:
    layer = torch.nn.Linear(4, 5)
    before = layer.weight.detach().clone()
    rows = torch.tensor([True, False, True, False, False])
    anchor = HeadAnchor(layer, l2=0.5, rows=rows)
    opt = torch.optim.AdamW(layer.parameters(), lr=0.1, weight_decay=0.1)
    for _ in range(3):
        loss = layer(torch.randn(8, 4)).sum() + anchor.penalty(layer)
        loss.backward()
        opt.step()
        opt.zero_grad()
        anchor.restore_rows(layer)
    assert torch.equal(layer.weight[~rows], before[~rows])
    assert not torch.equal(layer.weight[rows], before[rows])
    assert not any(k for k in anchor.state_dict())  # nothing of it in checkpoints


def test_loss_targets() -> None:
    valid = torch.tensor([[True, True, False], [False, False, True]])
    target = torch.tensor([0, 2])
    logits = torch.zeros(2, 3, requires_grad=True)
    seen = {}

    def capture(x, y):
        seen["y"] = y
        return x.sum()

    Loss("soft_ce", capture, "uniform")(logits, target, valid)
    assert torch.equal(seen["y"], torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]))
    Loss("bce", capture, "multi_hot")(logits, target, valid)
    assert torch.equal(seen["y"], valid.float())
    Loss("ce", capture, "single")(logits, target, valid)
    assert torch.equal(seen["y"], target)
    with pytest.raises(UserError, match="not finite at step 7"):
        finite_or_raise(torch.tensor(float("nan")), 7)


def _reference_target(kind, valid, pretrained, unseen, keep):
    """The target written out per image and class, independently of soft_target."""
    n, c = valid.shape
    z = pretrained.double().numpy()
    out = torch.zeros(n, c, dtype=torch.float64)
    for i in range(n):
        if kind == "uniform":
            e = [math.exp(v - z[i].max()) for v in z[i]]
            probs = [v / sum(e) for v in e]
        else:
            probs = [1 / (1 + math.exp(-v)) for v in z[i]]
        kept = [keep * probs[j] if unseen[j] else 0.0 for j in range(c)]
        labels = [j for j in range(c) if valid[i, j]]
        for j in range(c):
            if unseen[j]:
                out[i, j] = kept[j]
            elif j in labels:
                out[i, j] = (1 - sum(kept)) / len(labels) if kind == "uniform" else 1.0
    return out.float()


@pytest.mark.parametrize("kind", ["uniform", "multi_hot"])
@pytest.mark.parametrize("keep", [0.0, 0.5, 1.0])
def test_soft_target_keeps_the_pretrained_probabilities_of_unseen_classes(kind, keep) -> None:
    g = torch.Generator().manual_seed(0)
    unseen = torch.tensor([False, False, False, True, True, True])
    valid = torch.tensor([[1, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0], [1, 0, 1, 0, 0, 0]]).bool()
    pretrained = torch.randn(3, 6, generator=g) * 3
    got = soft_target(kind, valid, pretrained, unseen, keep)
    torch.testing.assert_close(got, _reference_target(kind, valid, pretrained, unseen, keep))
    if kind == "uniform":
        torch.testing.assert_close(got.sum(dim=1), torch.ones(3))
    with pytest.raises(ValueError, match="marked unseen"):
        soft_target(kind, valid, pretrained, ~unseen, 1.0)


@pytest.mark.parametrize(("name", "kind"), [("soft_ce", "uniform"), ("bce", "multi_hot")])
def test_keep_unseen_one_leaves_unseen_logits_of_the_pretrained_model_untouched(name, kind):
    """With keep_unseen=1, a model still equal to the pretrained one gets no gradient on the
    logits of unseen classes (their target is its own probability); with 0 it is pushed
    down on every one of them."""
    cfg = OmegaConf.load(CONFIG_DIR / "loss" / f"{name}.yaml")
    g = torch.Generator().manual_seed(1)
    unseen = torch.tensor([False, False, True, True, True])
    valid = torch.tensor([[1, 1, 0, 0, 0], [0, 1, 0, 0, 0]]).bool()
    pretrained = torch.randn(2, 5, generator=g)
    grads = {}
    for keep in (0.0, 1.0):
        cfg.keep_unseen = keep
        loss = build_loss(cfg)
        assert loss.target == kind and loss.keep_unseen == keep
        logits = pretrained.clone().requires_grad_(True)
        loss(logits, torch.tensor([0, 1]), valid, pretrained, unseen).backward()
        grads[keep] = logits.grad
    assert torch.all(grads[0.0][:, unseen] > 0)
    torch.testing.assert_close(grads[1.0][:, unseen], torch.zeros(2, 3), atol=1e-7, rtol=0)
    assert torch.all(grads[1.0][:, ~unseen] != 0)


def test_anchor_gives_the_pretrained_logits_after_training() -> None:
    layer = torch.nn.Linear(4, 5)
    x = torch.randn(3, 4)
    before = layer(x).detach()
    anchor = HeadAnchor(layer, unseen=torch.tensor([False, True, True, False, True]))
    with torch.no_grad():
        layer.weight.add_(1.0)
    torch.testing.assert_close(anchor.pretrained_logits(x), before)
    assert not torch.equal(layer(x), before)


def test_pooled_features_give_the_forward_logits(model) -> None:
    """Head-only training on images takes the classifier of ``pooled`` (for the
    pretrained logits beside): the same logits as the module's forward."""
    set_trainable(model, "head")
    module = FineTuneModule(
        model.eval(),
        Scorer({"single": HeadSpec(SingleLabelHead())}),
        {"d": 2},
        loss=Loss("soft_ce", torch.nn.Identity(), "uniform", 1.0),
        trainable=set_trainable(model, "head"),
        optim={"opt": "adam", "lr": 1e-3},
        sched=None,
        normalize=Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
    )
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(module.classify(module.pooled(images)), module(images))
