"""Test models registered with timm (``model.name=<name>``): tiny, random weights, for
tests only."""

from __future__ import annotations

import timm
import torch
from timm.models import register_model
from timm.models.efficientnet import EfficientNet

BATCH_TERM = 1e-4


class BatchSensitiveEfficientNet(EfficientNet):
    """timm's ``test_efficientnet`` whose features (and so its logits) get
    ``BATCH_TERM * mean of the batch's features`` added: an image's outputs depend on the
    batch it is computed in, in their last digits, on any machine. The distributed tests
    use it to see that every image is computed in the batch it has on one process (where a
    real model shows this only on CPUs whose kernels round by batch shape)."""

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        features = super().forward_features(x)
        return features + BATCH_TERM * features.mean()


@register_model
def test_batch_sensitive(pretrained: bool = False, **kwargs) -> EfficientNet:
    if pretrained:
        raise ValueError("test_batch_sensitive has no pretrained weights")
    model = timm.create_model("test_efficientnet", **kwargs)
    model.__class__ = BatchSensitiveEfficientNet  # same modules and weights, one more term
    return model
