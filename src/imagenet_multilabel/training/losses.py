"""Losses of conf/loss: timm's (or torch's) loss modules, and the target each one is given.

``target`` of a loss option: ``multi_hot`` (the image's valid labels as 0/1: BCE, ASL),
``uniform`` (the uniform distribution over its valid labels: soft-target cross-entropy) or
``single`` (the original label: cross-entropy, the single-label baseline). Multi-label
targets need a label set; images whose label set is empty are left out of training.

``keep_unseen`` (0..1, multi-label targets; learning without forgetting): the target keeps
that share of the pretrained model's probabilities of the classes never seen in training
(the softmax for ``uniform``, the sigmoid for ``multi_hot``), the valid labels share the
rest of the mass. The training images hold only seen classes, so without it every unseen
class is taught "absent" on every image, and a softmax learns that one of the seen classes
is always there.

``soft_labels`` (losses that take a probability target: BCE, soft-target cross-entropy):
a training image whose labels were rated (ReaL's raters' scores, ``labels=real``) has each
rated label's score as its target weight instead of 0/1 (``uniform``: the scores
normalised to sum to 1); an image that was not rated keeps its label set's 0/1. The
targets are built with the training sets (``training/fit_sets.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from timm.loss import BinaryCrossEntropy, SoftTargetCrossEntropy
from torch import Tensor, nn

from imagenet_multilabel.core.errors import UserError

TARGETS = ("multi_hot", "uniform", "single")
# the loss modules whose target may be any probability (not only 0/1): loss.soft_labels
SOFT_TARGET_MODULES = (BinaryCrossEntropy, SoftTargetCrossEntropy, nn.BCEWithLogitsLoss)


@dataclass
class Loss:
    """A loss module and the kind of target it takes."""

    name: str
    module: nn.Module
    target: str
    keep_unseen: float = 0.0
    soft_labels: bool = False

    @property
    def multilabel(self) -> bool:
        return self.target != "single"

    def __call__(
        self,
        logits: Tensor,
        target: Tensor,
        valid: Tensor | None,
        pretrained: Tensor | None = None,
        unseen: Tensor | None = None,
    ) -> Tensor:
        """``pretrained``: the pretrained logits of the batch and ``unseen`` the (C,) mask of
        classes never seen in training, both needed when ``keep_unseen`` is set."""
        if self.target == "single":
            return self.module(logits, target)
        dense = soft_target(
            self.target, valid.to(logits.dtype), pretrained, unseen, self.keep_unseen
        )
        return self.module(logits, dense)

    def record(self, node: Mapping[str, Any]) -> dict[str, Any]:
        return {"name": self.name, "target": self.target, **dict(node)}


def soft_target(
    kind: str,
    valid: Tensor,
    pretrained: Tensor | None = None,
    unseen: Tensor | None = None,
    keep: float = 0.0,
) -> Tensor:
    """The target of a multi-label loss: ``valid`` (N, C; 0/1, or the label weights of
    ``loss.soft_labels``) as it is (``multi_hot``) or normalised to sum to 1 over each
    row's labels (``uniform``), with ``keep`` times the
    pretrained probabilities of the ``unseen`` classes (the valid labels, all seen in
    training, then share 1 - that mass under ``uniform``)."""
    dense = valid.float()
    if kind == "uniform":
        dense = dense / dense.sum(dim=1, keepdim=True)
    if not keep:
        return dense
    if pretrained is None or unseen is None:
        raise ValueError("keep_unseen needs the pretrained logits and the unseen classes")
    if bool((valid.bool() & unseen).any()):
        raise ValueError("a valid label of a training image is marked unseen")
    z = pretrained.detach().float()
    probs = torch.softmax(z, dim=1) if kind == "uniform" else torch.sigmoid(z)
    kept = keep * probs * unseen.to(probs.dtype)
    if kind == "uniform":
        dense = dense * (1.0 - kept.sum(dim=1, keepdim=True))
    return dense + kept


def build_loss(node: DictConfig) -> Loss:
    """A ``loss`` node: ``name``, ``target`` and the ``_target_`` module with its options."""

    spec = OmegaConf.to_container(node, resolve=True)
    name, target = spec.pop("name", "loss"), spec.pop("target", None)
    keep = spec.pop("keep_unseen", 0.0)
    soft = spec.pop("soft_labels", False)
    if target not in TARGETS:
        raise UserError(f"loss.target={target!r} is unknown: use one of {', '.join(TARGETS)}")
    if isinstance(keep, bool) or not isinstance(keep, int | float) or not 0 <= keep <= 1:
        raise UserError(f"loss.keep_unseen={keep!r} must be a number from 0 to 1")
    if keep and target == "single":
        raise UserError(f"loss.keep_unseen needs a multi-label loss; '{name}' is single-label")
    if not isinstance(soft, bool):
        raise UserError(f"loss.soft_labels={soft!r} is not valid: give true or false")
    module = instantiate(spec, _convert_="all")
    if not isinstance(module, nn.Module):
        raise UserError(f"loss '{name}' is not a torch module: check conf/loss/{name}.yaml")
    if soft and (target == "single" or not isinstance(module, SOFT_TARGET_MODULES)):
        raise UserError(
            f"loss.soft_labels needs a loss that takes soft targets (loss=bce or loss=soft_ce); "
            f"'{name}' takes 0/1 targets"
        )
    return Loss(str(name), module, target, float(keep), soft)


def finite_or_raise(loss: Tensor, step: int, any_rank: Any = None) -> None:
    """Stop at the first step whose loss is NaN or infinite (on any rank: ``any_rank``
    reduces a bool over ranks), with the step in the message."""
    bad = not bool(torch.isfinite(loss.detach()).all())
    if any_rank is not None:
        bad = bool(any_rank(bad))
    if bad:
        raise UserError(
            f"the loss is not finite at step {step}: lower optim.lr, set "
            "trainer.gradient_clip_val=1.0, or use precision 32-true"
        )
