"""Losses of conf/loss: timm's (or torch's) loss modules, and the target each one is given.

``target`` of a loss option: ``multi_hot`` (the image's valid labels as 0/1: BCE, ASL),
``uniform`` (the uniform distribution over its valid labels: soft-target cross-entropy) or
``single`` (the original label: cross-entropy, the single-label baseline). Multi-label
targets need a label set; images whose label set is empty are left out of training.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from ..errors import UserError

TARGETS = ("multi_hot", "uniform", "single")


@dataclass
class Loss:
    """A loss module and the kind of target it takes."""

    name: str
    module: nn.Module
    target: str

    @property
    def multilabel(self) -> bool:
        return self.target != "single"

    def __call__(self, logits: Tensor, target: Tensor, valid: Tensor | None) -> Tensor:
        if self.target == "single":
            return self.module(logits, target)
        dense = valid.to(logits.dtype)
        if self.target == "uniform":
            dense = dense / dense.sum(dim=1, keepdim=True)
        return self.module(logits, dense)

    def record(self, node: Mapping[str, Any]) -> dict[str, Any]:
        return {"name": self.name, "target": self.target, **dict(node)}


def build_loss(node: DictConfig) -> Loss:
    """A ``loss`` node: ``name``, ``target`` and the ``_target_`` module with its options."""
    from hydra.utils import instantiate

    spec = OmegaConf.to_container(node, resolve=True)
    name, target = spec.pop("name", "loss"), spec.pop("target", None)
    if target not in TARGETS:
        raise UserError(f"loss.target={target!r} is unknown: use one of {', '.join(TARGETS)}")
    module = instantiate(spec, _convert_="all")
    if not isinstance(module, nn.Module):
        raise UserError(f"loss '{name}' is not a torch module: check conf/loss/{name}.yaml")
    return Loss(str(name), module, target)


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
