"""The functional core: every metric of the project is computed here, once, from tensors.

Inputs follow one convention:
- ``logits``: float tensor ``(N, C)`` of raw model outputs;
- ``target``: int64 tensor ``(N,)`` with the original single label of each image;
- ``valid``: bool tensor ``(N, C)``, the multi-hot set of valid labels of each image (an
  all-False row means "no valid label": such images are left out of multi-label metrics).

Accuracies are returned in percent, as Python floats. Computation is done in float64 where
sums are involved, so results do not depend on batch or shard order.
"""

from __future__ import annotations

import torch
from torch import Tensor


def topk_correct(logits: Tensor, target: Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[int, Tensor]:
    """Per-image bool: is ``target`` among the ``k`` highest logits (ties broken by index)."""
    kmax = min(max(ks), logits.shape[1])
    top = torch.topk(logits, kmax, dim=1, sorted=True).indices
    hits = top == target[:, None]
    return {k: hits[:, : min(k, kmax)].any(dim=1) for k in ks}


def accuracy(correct: Tensor) -> float:
    """Percentage of True entries; NaN for an empty tensor."""
    if correct.numel() == 0:
        return float("nan")
    return 100.0 * correct.double().mean().item()


def nll(logits: Tensor, target: Tensor) -> float:
    """Mean negative log-likelihood of the target under the softmax."""
    logp = torch.log_softmax(logits.double(), dim=1)
    return -logp.gather(1, target[:, None]).mean().item()


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


def single_label_metrics(logits: Tensor, target: Tensor, n_bins: int = 15) -> dict[str, float]:
    """top1, top5 (percent), nll and ece (percent) against the original single label."""
    hits = topk_correct(logits, target, (1, 5))
    confidence = torch.softmax(logits.double(), dim=1).max(dim=1).values
    return {
        "top1": accuracy(hits[1]),
        "top5": accuracy(hits[5]),
        "nll": nll(logits, target),
        "ece": expected_calibration_error(confidence, hits[1], n_bins),
    }
