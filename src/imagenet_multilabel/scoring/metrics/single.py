"""Single-label metrics: accuracy against the original label, NLL and calibration.

Shares (accuracies, ECE) are returned in percent as Python floats, ``nll`` in nats; a
metric over an empty set of images is NaN. Sums are taken in float64.
"""

from __future__ import annotations

import torch
from torch import Tensor

from imagenet_multilabel.core.runtime import one_torch_thread
from imagenet_multilabel.scoring.metrics.ranking import RowSummary


def accuracy(correct: Tensor) -> float:
    """Percentage of True entries; NaN for an empty tensor."""
    if correct.numel() == 0:
        return float("nan")
    return 100.0 * correct.double().mean().item()


def expected_calibration_error(confidence: Tensor, correct: Tensor, n_bins: int = 15) -> float:
    """ECE in percent with ``n_bins`` equal-width confidence bins (right-closed, as in
    Guo et al. 2017 and torchmetrics): sum over bins of |accuracy - mean confidence| x
    bin share."""
    if confidence.numel() == 0:
        return float("nan")
    confidence = confidence.double()
    bins = torch.clamp(torch.ceil(confidence * n_bins).long() - 1, 0, n_bins - 1)
    conf_sum = torch.bincount(bins, weights=confidence, minlength=n_bins)
    acc_sum = torch.bincount(bins, weights=correct.double(), minlength=n_bins)
    return 100.0 * ((acc_sum - conf_sum).abs().sum() / confidence.numel()).item()


@one_torch_thread()
def single_label_metrics(
    logits: Tensor, target: Tensor, n_bins: int = 15, summary: RowSummary | None = None
) -> dict[str, float]:
    """top1, top3, top5 (percent), nll and ece (percent) against the original single label.
    ``summary``: the shared :class:`RowSummary` of ``logits``, if already made."""
    p = summary if summary is not None else RowSummary(logits, 5)
    logits = p.logits
    top = p.ranked(5)
    hit = top == target[:, None]
    hits = {k: hit[:, : min(k, top.shape[1])].any(dim=1) for k in (1, 3, 5)}
    m, s = p.m, p.s
    confidence = 1.0 / s
    logp_target = logits.gather(1, target[:, None]).squeeze(1).double() - m - torch.log(s)
    return {
        "top1": accuracy(hits[1]),
        "top3": accuracy(hits[3]),
        "top5": accuracy(hits[5]),
        "nll": -logp_target.mean().item() if len(target) else float("nan"),
        "ece": expected_calibration_error(confidence, hits[1], n_bins),
    }
