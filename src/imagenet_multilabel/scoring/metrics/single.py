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
    """ECE in percent with ``n_bins`` equal-width confidence bins: sum over bins of
    |accuracy - mean confidence| x bin share.

    The bins are those of torchmetrics' ``MulticlassCalibrationError`` (``binary``,
    ``multilabel`` alike): left-closed, ``[k/n, (k+1)/n)``, and a confidence of exactly 1.0
    in a bin of its own (a saturated softmax is not averaged with the 0.93-1.0 bin). Guo et
    al. (2017) and scikit-learn's ``calibration_curve`` bin right-closed (a confidence on an
    edge ``k/n`` goes to the lower bin); the two differ only for confidences on an edge.
    Confidences are taken in float64 (torchmetrics: the input's dtype, float32): a float32
    confidence one rounding from an edge that float32 cannot hold (``k/15``), or a softmax
    that float32 rounds to 1.0, can fall in the neighbouring bin there."""
    if confidence.numel() == 0:
        return float("nan")
    confidence = confidence.double()
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64, device=confidence.device)
    bins = torch.bucketize(confidence, edges, right=True) - 1  # [edge_k, edge_k+1); 1.0: n
    bins = bins.clamp(0, n_bins)  # (NaN confidences are refused before: Scorer)
    conf_sum = torch.bincount(bins, weights=confidence, minlength=n_bins + 1)
    acc_sum = torch.bincount(bins, weights=correct.double(), minlength=n_bins + 1)
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
