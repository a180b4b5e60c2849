"""Heads turn a backbone's logits into predictions and score them.

A head is the pluggable "what do we predict, and how is it judged" part of an evaluation:
it receives the logits of a whole dataset (gathered across ranks, in dataset order) with
the original labels and, where a label set exists, the multi-hot valid labels, and returns
named metrics computed by :mod:`imagenet_multilabel.metrics.functional`.
"""

from __future__ import annotations

from torch import Tensor

from ..metrics import functional as F


class Head:
    """Base class. ``needs_labels``: the head can only score images with a label set."""

    name: str = "head"
    needs_labels: bool = False

    def metrics(self, logits: Tensor, target: Tensor, valid: Tensor | None) -> dict[str, float]:
        raise NotImplementedError


class SingleLabelHead(Head):
    """Softmax over classes, argmax / top-k: top1, top5, NLL and ECE against the original label."""

    name = "single"

    def __init__(self, ece_bins: int = 15) -> None:
        self.ece_bins = ece_bins

    def metrics(self, logits: Tensor, target: Tensor, valid: Tensor | None) -> dict[str, float]:
        return F.single_label_metrics(logits, target, self.ece_bins)
