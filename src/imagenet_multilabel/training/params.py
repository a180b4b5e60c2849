"""What is trained (``finetune=head|last_n|full``) and how: timm's optimizer factory (with
optional layer-wise lr decay) and timm's cosine schedule with warmup, stepped per update."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from timm.models import group_parameters
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler
from torch import nn

from imagenet_multilabel.core.errors import UserError
from imagenet_multilabel.training.choices import FINETUNE_MODES


@dataclass
class Trainable:
    """The trained parameter groups of a model, and the modules kept in eval mode while
    training (frozen: batch-norm statistics do not move)."""

    mode: str
    groups: list[str]
    num_trained: int
    frozen_modules: list[nn.Module] = field(repr=False)

    def record(self) -> dict[str, Any]:
        return {"mode": self.mode, "groups": self.groups, "trained_parameters": self.num_trained}


def _classifier_names(model: nn.Module) -> set[str]:
    classifier = model.get_classifier()
    ids = {id(p) for p in classifier.parameters()}
    return {n for n, p in model.named_parameters() if id(p) in ids}


def stage_groups(model: nn.Module) -> list[list[str]]:
    """Parameter names by stage in forward order (timm's ``group_matcher(coarse=True)``),
    the classifier's group last."""
    if not callable(getattr(model, "group_matcher", None)):
        raise UserError(
            f"{type(model).__name__} has no timm group_matcher, so its stages are unknown: "
            "use finetune.mode=head or full"
        )

    return [
        list(names) for names in group_parameters(model, model.group_matcher(coarse=True)).values()
    ]


def set_trainable(model: nn.Module, mode: str, last_n: int = 1) -> Trainable:
    """Set ``requires_grad``: the classifier (``head``), the last ``last_n`` stages and the
    classifier (``last_n``), or everything (``full``)."""
    if mode not in FINETUNE_MODES:
        raise UserError(
            f"finetune.mode={mode!r} is unknown: use one of {', '.join(FINETUNE_MODES)}"
        )
    classifier = _classifier_names(model)
    if not classifier:
        raise UserError(f"{type(model).__name__} has no classifier to fine-tune (num_classes=0)")
    if mode == "full":
        names = {n for n, _ in model.named_parameters()}
        groups = ["all"]
    elif mode == "head":
        names, groups = classifier, ["classifier"]
    else:
        stages = [g for g in stage_groups(model) if not set(g) <= classifier]
        if not 1 <= last_n <= len(stages):
            raise UserError(
                f"finetune.last_n={last_n}: {type(model).__name__} has {len(stages)} stages "
                f"(timm group_matcher), choose 1..{len(stages)}"
            )
        chosen = stages[-last_n:]
        names = classifier.union(*map(set, chosen))
        groups = [g[0].rsplit(".", 1)[0] + ".*" for g in chosen] + ["classifier"]
    for n, p in model.named_parameters():
        p.requires_grad_(n in names)
    frozen = [
        m
        for m in model.modules()
        if any(True for _ in m.parameters()) and not any(p.requires_grad for p in m.parameters())
    ]
    if mode == "head":
        frozen = [model]  # the classifier is a linear layer: eval mode changes nothing in it
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return Trainable(mode, groups, trained, frozen)


def build_optimizer(model: nn.Module, node: Mapping[str, Any]) -> torch.optim.Optimizer:
    """timm's ``create_optimizer_v2`` over the trainable parameters (``opt``, ``lr``,
    ``weight_decay``, ``layer_decay``, ``momentum``, ...; no weight decay on biases and
    norms)."""

    opts = {k: v for k, v in dict(node).items() if v is not None}
    if opts.get("layer_decay") is not None and not callable(getattr(model, "group_matcher", None)):
        raise UserError("optim.layer_decay needs a timm model with a group_matcher: set it to null")
    trainable = any(p.requires_grad for p in model.parameters())
    if not trainable:
        raise UserError("nothing to train: check finetune.mode")
    if opts.get("weight_decay") or opts.get("layer_decay"):
        return create_optimizer_v2(model, **opts)  # skips frozen parameters itself
    return create_optimizer_v2([p for p in model.parameters() if p.requires_grad], **opts)


def build_scheduler(
    optimizer: torch.optim.Optimizer, node: Mapping[str, Any] | None, total_steps: int
) -> Any | None:
    """timm's ``CosineLRScheduler`` counted in optimizer updates: ``warmup_steps`` of
    linear warmup from ``warmup_lr_init``, then cosine decay to ``lr_min`` at
    ``total_steps``; ``name: constant`` (or no node): a fixed lr."""
    if not node or node.get("name", "constant") == "constant":
        return None
    if node["name"] != "cosine":
        raise UserError(f"sched.name={node['name']!r} is unknown: use cosine or constant")

    warmup = int(node.get("warmup_steps") or 0)
    if warmup >= total_steps:
        raise UserError(
            f"sched.warmup_steps={warmup} is not less than the {total_steps} training steps"
        )
    return CosineLRScheduler(
        optimizer,
        t_initial=total_steps - warmup,
        lr_min=float(node.get("lr_min") or 0.0),
        warmup_t=warmup,
        warmup_lr_init=float(node.get("warmup_lr_init") or 0.0),
        warmup_prefix=True,
        t_in_epochs=False,
    )


def check_optimizer(optim: DictConfig | Mapping[str, Any]) -> None:
    """``optim.*`` builds an optimizer: timm's ``create_optimizer_v2`` over one parameter
    with the run's options (an option the optimizer does not take, a value it refuses),
    one line instead of a traceback when Lightning sets up the fit; run before the model
    is built and the data read (what the config alone can judge is checked before torch
    is imported: training/checks.py)."""
    node = OmegaConf.to_container(optim, resolve=True) if isinstance(optim, DictConfig) else optim
    probe = torch.nn.Linear(1, 1)
    try:
        build_optimizer(probe, {**node, "layer_decay": None})
    except UserError:
        raise
    except (TypeError, ValueError, AssertionError, KeyError) as e:
        detail = " ".join(str(e).split())[:160] or type(e).__name__
        raise UserError(
            f"optim.opt={node.get('opt')!r} with these optim.* options builds no "
            f"optimizer ({detail}): check conf/optim/ for the options it takes"
        ) from None
