"""Checks of fine-tuning settings that need torch, run before the model is built and the
data read (what the config alone can judge is in checks.py, before torch is imported)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from imagenet_multilabel.core.errors import UserError
from imagenet_multilabel.training.params import build_optimizer


def check_optimizer(optim: DictConfig | Mapping[str, Any]) -> None:
    """``optim.*`` builds an optimizer: timm's ``create_optimizer_v2`` over one parameter
    with the run's options (an option the optimizer does not take, a value it refuses),
    one line instead of a traceback when Lightning sets up the fit."""
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
