"""One evaluation pass that keeps, per image, the backbone's pooled features beside its
logits: the pretrained results of fine-tuning, and the inputs of head-only training (the
backbone then never runs again)."""

from __future__ import annotations

import torch
from torch import nn

from imagenet_multilabel.lit.evaluation import EvaluationModule
from imagenet_multilabel.scoring.metrics.buffer import Predictions


class PooledAndLogits(nn.Module):
    """A timm classifier whose output is ``[pooled features | logits]``: the logits are
    those of ``model(x)`` (timm's forward is forward_features, then forward_head, which
    ends in the classifier)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.num_features = int(model.num_features)
        self.num_classes = self.num_features + int(model.num_classes)
        self.valid_classes = int(model.num_classes)  # the valid labels' columns

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pooled = self.model.forward_head(self.model.forward_features(images), pre_logits=True)
        return torch.cat([pooled, self.model.get_classifier()(pooled)], dim=1)


class FeatureExtraction(EvaluationModule):
    """The evaluation module over :class:`PooledAndLogits`: after validation, ``gathered``
    maps each dataset to its (features, logits, target, valid), gathered from all ranks."""

    def __init__(self, model: nn.Module, *args, **kwargs) -> None:
        super().__init__(PooledAndLogits(model), *args, **kwargs)
        self.gathered: dict[str, tuple[torch.Tensor, Predictions]] = {}

    def on_validation_epoch_end(self) -> None:
        d = self.backbone.num_features
        self.gathered = {}
        for name, preds in self.gather_predictions().items():
            with torch.inference_mode(False):  # clones that can be inputs of training
                valid = None if preds.valid is None else preds.valid.clone()
                logits = Predictions(preds.logits[:, d:].clone(), preds.target.clone(), valid)
                self.gathered[name] = (preds.logits[:, :d].clone(), logits)
