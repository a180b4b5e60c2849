"""Multi-label metrics: rankings and predicted label sets scored against each image's set
of valid labels (ReaL accuracy, variable top-k, label-count subgroups, ASMA, mAP, set
metrics, the uncertainty view).

Shares are in percent, as Python floats; a metric over an empty set of images is NaN.
Images with an empty label set only count in ``num_*``. Metric names: see
:mod:`.names` and :func:`multilabel_metrics`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from imagenet_multilabel.core.runtime import one_torch_thread
from imagenet_multilabel.scoring.metrics.average_precision import (
    mean_average_precision,
    scores_average_precision,
)
from imagenet_multilabel.scoring.metrics.names import (
    LABEL_GROUPS,
    MAIN_TOP1,
    SUBGROUP_ACCURACIES,
    SUBGROUP_COUNT,
    confident_errors,
    subgroup,
)
from imagenet_multilabel.scoring.metrics.ranking import (
    Ranking,
    RowSummary,
    label_counts,
    ranked_topk,
)
from imagenet_multilabel.scoring.metrics.scores import ClassScores
from imagenet_multilabel.scoring.metrics.single import accuracy, expected_calibration_error

PRED_MODES: tuple[str, ...] = ("vartopk", "topk", "threshold", "cumulative")
_CHUNK_ROWS = 2048


def asma(strict_correct: Tensor, group_count: Tensor, min_subgroup_size: int = 1) -> float:
    """Aggregate Subgroup Model Accuracy, in percent.

    Definition: split the images that have at least one valid label into subgroups by the
    size of their label set: 1, 2, 3, and 4 or more labels. For each subgroup ``g`` let
    ``A_g`` be its variable top-k strict accuracy: the percentage of its images whose
    ``k`` highest-scoring classes (``k`` = the image's number of valid labels; ties broken
    by the lower class index) are exactly its ``k`` valid labels. ASMA is the unweighted
    mean of ``A_g`` over the subgroups with at least ``min_subgroup_size`` images (at
    least 1): ``ASMA = (1 / |G|) * sum_{g in G} A_g``. Every subgroup weighs the same
    whatever its size, so the many single-label images cannot hide how a model does on
    multi-label ones. NaN when no subgroup qualifies.

    ``strict_correct`` and ``group_count``: per subgroup (in :data:`LABEL_GROUPS` order),
    the number of strictly correct images and the number of images.
    """
    keep = group_count >= max(1, int(min_subgroup_size))
    if not bool(keep.any()):
        return float("nan")
    acc = strict_correct[keep].double() / group_count[keep].double()
    return 100.0 * acc.mean().item()


def set_metrics(pred_size: Tensor, tp: Tensor, n_valid: Tensor, n_classes: int) -> dict[str, float]:
    """Micro precision, recall, F1, subset accuracy and Hamming loss (all percent) of
    predicted label sets, from per-image counts (labeled images only): predicted set
    size, true positives (predicted and valid) and valid set size."""
    n_tp, n_fp, n_fn = int(tp.sum()), int((pred_size - tp).sum()), int((n_valid - tp).sum())
    n_exact = int(((tp == pred_size) & (tp == n_valid)).sum())
    images = len(n_valid)

    def pct(num: float, den: float) -> float:
        return 100.0 * num / den if den > 0 else float("nan")

    return {
        "precision": pct(n_tp, n_tp + n_fp),
        "recall": pct(n_tp, n_tp + n_fn),
        "f1": pct(2 * n_tp, 2 * n_tp + n_fp + n_fn),
        "subset_accuracy": pct(n_exact, images),
        "hamming_loss": pct(n_fp + n_fn, images * n_classes),
    }


def predicted_set_counts(
    ranking: Ranking,
    scores: ClassScores,
    valid: Tensor,
    mode: str = "vartopk",
    k: int = 1,
    threshold: float = 0.5,
    mass: float = 0.9,
) -> tuple[Tensor, Tensor]:
    """Per labeled image: size of the predicted label set and its true positives.

    Modes: ``vartopk`` the ``n_valid`` best classes; ``topk`` the ``k`` best; ``threshold``
    every class with score ``>= threshold``; ``cumulative`` the smallest set of best
    classes whose scores sum to ``>= mass`` (all classes if they never do).
    """
    lab = ranking.labeled
    index = lab.nonzero().squeeze(1)
    if mode == "vartopk":
        return ranking.n_valid[lab], ranking.found[lab]
    if mode == "topk":
        kk = min(int(k), ranking.top.shape[1])
        if kk < k and kk < valid.shape[1]:
            raise ValueError("ranking too short for topk")
        tp = ranking.hits[lab, :kk].sum(dim=1)
        return torch.full_like(tp, kk), tp
    if mode == "threshold":
        size = torch.empty(len(index), dtype=torch.long)
        tp = torch.empty(len(index), dtype=torch.long)
        for a in range(0, len(index), _CHUNK_ROWS):
            rows = index[a : a + _CHUNK_ROWS]
            pred = scores.rows(rows) >= threshold
            size[a : a + len(rows)] = pred.sum(dim=1)
            tp[a : a + len(rows)] = (pred & valid[rows]).sum(dim=1)
        return size, tp
    if mode == "cumulative":
        return _cumulative_counts(scores, valid, index, mass)
    raise ValueError(f"mode must be one of {PRED_MODES}, got {mode!r}")


def _cumulative_counts(
    scores: ClassScores, valid: Tensor, index: Tensor, mass: float
) -> tuple[Tensor, Tensor]:
    n_classes = valid.shape[1]
    size = torch.full((len(index),), n_classes, dtype=torch.long)
    tp = torch.empty(len(index), dtype=torch.long)
    todo = torch.arange(len(index))
    kk = min(16, n_classes)
    while len(todo):
        rows = index[todo]
        top = ranked_topk(scores.logits[rows], kk)
        cum = scores.at(rows[:, None].expand_as(top), top).cumsum(dim=1)
        done = cum[:, -1] >= mass if kk < n_classes else torch.ones(len(rows), dtype=torch.bool)
        k_row = torch.where(cum[:, -1] >= mass, (cum < mass).sum(dim=1) + 1, kk)
        hits = valid[rows[:, None], top].cumsum(dim=1)
        tp_row = hits.gather(1, (k_row - 1)[:, None]).squeeze(1)
        size[todo[done]] = k_row[done]
        tp[todo[done]] = tp_row[done]
        todo = todo[~done]
        kk = n_classes  # the rest: rank every class
    return size, tp


def multilabel_ranks(valid: Tensor, mode: str = "vartopk", k: int = 1) -> int:
    """How many best classes per image :func:`multilabel_metrics` reads: 5, the ``k`` of
    ``topk`` mode, or the largest label set, whichever is largest."""
    largest = int(label_counts(valid).max()) if len(valid) else 0
    return max(5, int(k) if mode == "topk" else 0, largest)


@one_torch_thread()
def multilabel_metrics(
    logits: Tensor,
    target: Tensor,
    valid: Tensor,
    *,
    mode: str = "vartopk",
    k: int = 1,
    threshold: float = 0.5,
    mass: float = 0.9,
    scores: str = "softmax",
    min_subgroup_size: int = 1,
    n_bins: int = 15,
    confidences: tuple[float, ...] = (0.5, 0.8),
    summary: RowSummary | None = None,
) -> dict[str, float]:
    """Every multi-label metric of the project for one dataset (inputs as in
    :mod:`.ranking`; images with an empty label set only count in ``num_*``).

    Returns, in this order: ``num_images``, ``num_labeled``, ``num_unlabeled``;
    ``real_top1``, ``real_top5``; ``vartopk_strict``, ``vartopk_partial``; per label-count
    subgroup ``g`` in 1, 2, 3, 4+: ``num_images@labels=g``, ``top1@labels=g``,
    ``real_top1@labels=g``, ``vartopk_strict@labels=g``; ``asma`` (see :func:`asma`);
    ``map_macro``, ``map_micro``; ``precision``, ``recall``, ``f1``, ``subset_accuracy``,
    ``hamming_loss`` of the predicted label sets of ``mode`` (see
    :func:`predicted_set_counts`); ``confident_errors_valid@p>=t`` for each ``t`` in
    ``confidences`` (among labeled images whose top-1 differs from the original label
    with top-1 score ``>= t``: percentage whose top-1 is a valid label); ``ece_multilabel``
    (ECE of the top-1 score where top-1 is correct when it is a valid label).
    ``summary``: the shared :class:`RowSummary` of ``logits``, if already made.
    """
    if mode not in PRED_MODES:
        raise ValueError(f"mode must be one of {PRED_MODES}, got {mode!r}")
    kmin = max(5, int(k) if mode == "topk" else 0)
    p = summary if summary is not None else RowSummary(logits, multilabel_ranks(valid, mode, k))
    logits = p.logits
    n, n_classes = logits.shape
    ranking = Ranking(logits, valid, kmin, summary=p)
    lab = ranking.labeled
    n_lab = int(lab.sum())
    out: dict[str, float] = {
        "num_images": int(n),
        "num_labeled": int(n_lab),
        "num_unlabeled": int(n - n_lab),
        "real_top1": accuracy(ranking.real_correct(1)),
        "real_top5": accuracy(ranking.real_correct(5)),
        "vartopk_strict": accuracy(ranking.vartopk_strict()),
        "vartopk_partial": accuracy(ranking.vartopk_partial()),
    }
    group = ranking.group()
    top1 = ranking.top[:, 0] == target if n_classes else torch.zeros(n, dtype=torch.bool)
    real1 = ranking.hits[:, 0] if n_classes else torch.zeros(n, dtype=torch.bool)
    strict = ranking.found == ranking.n_valid
    hits = {"top1": top1, "real_top1": real1, "vartopk_strict": strict}
    strict_count = torch.zeros(len(LABEL_GROUPS), dtype=torch.long)
    group_count = torch.zeros(len(LABEL_GROUPS), dtype=torch.long)
    for gi, name in enumerate(LABEL_GROUPS):
        sel = group == gi
        group_count[gi] = int(sel.sum())
        strict_count[gi] = int(strict[sel].sum())
        out[subgroup(SUBGROUP_COUNT, name)] = int(group_count[gi])
        for metric in SUBGROUP_ACCURACIES:
            out[subgroup(metric, name)] = accuracy(hits[metric][sel])
    out["asma"] = asma(strict_count, group_count, min_subgroup_size)

    cs = ClassScores(logits, scores, summary=p)
    index = lab.nonzero().squeeze(1)
    per_class, micro = scores_average_precision(cs, index, valid)
    out["map_macro"] = mean_average_precision(per_class)
    out["map_micro"] = micro
    size, tp = predicted_set_counts(ranking, cs, valid, mode, k, threshold, mass)
    out.update(set_metrics(size, tp, ranking.n_valid[lab], n_classes))

    confidence = cs.top1()[lab]
    error = ~top1[lab]
    for t in confidences:
        sel = error & (confidence >= t)
        out[confident_errors(t)] = accuracy(real1[lab][sel])
    out["ece_multilabel"] = expected_calibration_error(confidence, real1[lab], n_bins)
    return out


def main_object_metrics(
    logits: Tensor, main: Tensor, valid: Tensor | None, summary: RowSummary | None = None
) -> dict[str, float]:
    """Top-1 against each image's main object (Tsipras et al.: the class the annotators
    chose as the main one), in percent over the images that have one (``main >= 0``):
    ``main_top1``, and per label-count subgroup ``g`` of ``valid`` (1, 2, 3, 4+; with
    Tsipras et al.'s labels, the number of objects) ``main_top1@labels=g``. Ties: the
    lower class index (the shared ranking)."""
    p = summary if summary is not None else RowSummary(logits, 1)
    n = main.shape[0]
    top1 = p.ranked(1)[:, 0] if logits.shape[1] else torch.full((n,), -1, dtype=torch.long)
    has = main >= 0
    correct = top1 == main
    out = {MAIN_TOP1: accuracy(correct[has])}
    if valid is not None:
        group = label_counts(valid.bool()).clamp(max=len(LABEL_GROUPS)) - 1
        for gi, name in enumerate(LABEL_GROUPS):
            out[subgroup(MAIN_TOP1, name)] = accuracy(correct[has & (group == gi)])
    return out
