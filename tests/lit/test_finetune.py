"""FineTuneModule pieces: what is trained, the head anchor, the loss targets."""

from __future__ import annotations

import pytest
import timm
import torch

from imagenet_multilabel.errors import UserError
from imagenet_multilabel.lit.finetune import HeadAnchor
from imagenet_multilabel.training.losses import Loss, finite_or_raise
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
