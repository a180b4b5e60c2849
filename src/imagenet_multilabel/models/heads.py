"""Heads turn a backbone's logits into predictions and score them.

A head is the pluggable "what do we predict, and how is it judged" part of an evaluation:
it receives the logits of a whole dataset (gathered across ranks, in dataset order) with
the original labels and, where a label set exists, the multi-hot valid labels, and returns
named metrics computed by :mod:`imagenet_multilabel.metrics.functional`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from torch import Tensor

from ..errors import UserError
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


def apply_heads(
    heads: Mapping[str, Head],
    logits: Tensor,
    target: Tensor,
    valid: Tensor | None,
    dataset: str,
    optional: Collection[str] = (),
) -> dict[str, float]:
    """All heads' metrics for one dataset, with ``num_images`` first.

    A head that needs labels is skipped for a dataset without a label set when it is
    ``optional`` (the default multi-label head), and is an error otherwise.
    """
    metrics: dict[str, float] = {"num_images": int(target.shape[0])}
    for name, head in heads.items():
        if head.needs_labels and valid is None:
            if name in optional:
                continue
            raise UserError(
                f"head '{name}' needs a label set but dataset '{dataset}' has none: "
                "pass labels=... or use head=single"
            )
        metrics.update(head.metrics(logits, target, valid))
    return metrics
