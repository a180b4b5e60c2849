"""Heads turn a backbone's logits into predictions and score them.

A head is the pluggable "what do we predict, and how is it judged" part of an evaluation:
it receives the logits of a whole dataset (gathered across ranks, in dataset order) with
the original labels and, where a label set exists, the multi-hot valid labels, and returns
named metrics computed by the metric core (:mod:`imagenet_multilabel.scoring.metrics`).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from imagenet_multilabel.core.errors import UserError
from imagenet_multilabel.scoring.metrics.multilabel import (
    PRED_MODES,
    multilabel_metrics,
    multilabel_ranks,
)
from imagenet_multilabel.scoring.metrics.ranking import RowSummary
from imagenet_multilabel.scoring.metrics.scores import SCORE_KINDS
from imagenet_multilabel.scoring.metrics.single import single_label_metrics


class Head:
    """Base class. ``needs_labels``: the head can only score images with a label set.

    ``metrics`` may be given ``summary``, the :class:`~.metrics.ranking.RowSummary` of
    the same logits that :class:`~.scorer.Scorer` makes once per dataset so that the heads
    share the ranking and softmax statistics; ``ranks`` says how many best classes per
    image the head reads from it.
    """

    name: str = "head"
    needs_labels: bool = False

    def ranks(self, valid: Tensor | None) -> int:
        return 5

    def metrics(
        self,
        logits: Tensor,
        target: Tensor,
        valid: Tensor | None,
        summary: RowSummary | None = None,
    ) -> dict[str, float]:
        raise NotImplementedError


class SingleLabelHead(Head):
    """Softmax over classes, argmax / top-k: top1, top5, NLL and ECE against the original label."""

    name = "single"

    def __init__(self, ece_bins: int = 15) -> None:
        self.ece_bins = ece_bins

    def metrics(
        self,
        logits: Tensor,
        target: Tensor,
        valid: Tensor | None,
        summary: RowSummary | None = None,
    ) -> dict[str, float]:
        return single_label_metrics(logits, target, self.ece_bins, summary=summary)


class MultiLabelHead(Head):
    """Scores the ranking against each image's set of valid labels.

    Args:
        mode: how the predicted label set is formed, for precision / recall / F1 /
            subset accuracy / Hamming loss: ``vartopk`` (the ``k`` best classes, ``k`` the
            image's number of valid labels: the paper's protocol), ``topk`` (the ``k``
            best), ``threshold`` (score ``>= threshold``) or ``cumulative`` (the smallest
            set of best classes whose scores sum to ``>= mass``).
        scores: ``softmax`` (one distribution over classes) or ``sigmoid`` (independent
            per class, for models fine-tuned multi-label).
        k, threshold, mass: parameters of the ``topk``, ``threshold``, ``cumulative`` modes.
        min_subgroup_size: label-count subgroups with fewer images are left out of ASMA.
        ece_bins: bins of ``ece_multilabel``.
        confidences: top-1 score thresholds of ``confident_errors_valid@p>=t``.

    The ranking metrics (ReaL top-1/5, variable top-k, subgroups, ASMA) do not depend on
    ``mode``; the mAPs depend on ``scores`` only. Metric names: see
    :func:`imagenet_multilabel.scoring.metrics.multilabel.multilabel_metrics`.
    """

    name = "multilabel"
    needs_labels = True

    def __init__(
        self,
        mode: str = "vartopk",
        scores: str = "softmax",
        k: int = 1,
        threshold: float = 0.5,
        mass: float = 0.9,
        min_subgroup_size: int = 1,
        ece_bins: int = 15,
        confidences: Sequence[float] = (0.5, 0.8),
    ) -> None:
        if mode not in PRED_MODES:
            raise UserError(f"head mode '{mode}' is unknown: use one of {', '.join(PRED_MODES)}")
        if scores not in SCORE_KINDS:
            raise UserError(
                f"head scores '{scores}' is unknown: use one of {', '.join(SCORE_KINDS)}"
            )
        if mode == "topk" and k < 1:
            raise UserError(f"head k={k} must be at least 1 for mode=topk")
        if mode == "cumulative" and not 0 < mass <= 1:
            raise UserError(f"head mass={mass} must be in (0, 1] for mode=cumulative")
        self.mode, self.scores, self.k = mode, scores, int(k)
        self.threshold, self.mass = float(threshold), float(mass)
        self.min_subgroup_size, self.ece_bins = int(min_subgroup_size), int(ece_bins)
        self.confidences = tuple(float(c) for c in confidences)

    def ranks(self, valid: Tensor | None) -> int:
        if valid is None:
            return 5
        return multilabel_ranks(valid.bool(), self.mode, self.k)

    def metrics(
        self,
        logits: Tensor,
        target: Tensor,
        valid: Tensor | None,
        summary: RowSummary | None = None,
    ) -> dict[str, float]:
        if valid is None:
            raise UserError(
                "the multi-label head needs a label set: choose one with labels=... "
                "or use head=single"
            )
        if valid.ndim != 2 or valid.shape != logits.shape:
            raise UserError(
                f"label set has {valid.shape[-1]} classes per image but the model predicts "
                f"{logits.shape[-1]}: use a label set made for this model's classes"
            )
        return multilabel_metrics(
            logits,
            target,
            valid.bool(),
            mode=self.mode,
            k=self.k,
            threshold=self.threshold,
            mass=self.mass,
            scores=self.scores,
            min_subgroup_size=self.min_subgroup_size,
            n_bins=self.ece_bins,
            confidences=self.confidences,
            summary=summary,
        )
