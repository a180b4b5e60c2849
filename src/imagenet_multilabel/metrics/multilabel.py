"""torchmetrics classes for multi-label retrieval and set prediction metrics.

:class:`MultilabelMAP` keeps every prediction (``cat`` states) and computes exact average
precision once per epoch; :class:`MultilabelSetMetrics` reduces each batch to integer
counts (``sum`` states). Both give on several processes exactly the numbers of one.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat

from . import functional as F


class MultilabelMAP(Metric):
    """``map_macro`` and ``map_micro`` (percent) over the images with a label set, with
    softmax or sigmoid scores. Stores all logits (float32) and valid labels (uint8, as
    gloo cannot gather bool): at 50,000 x 1000 about 250 MB; call ``compute`` once."""

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self, scores: str = "softmax", **kwargs) -> None:
        super().__init__(**kwargs)
        if scores not in F.SCORE_KINDS:
            raise ValueError(f"scores must be one of {F.SCORE_KINDS}, got {scores!r}")
        self.scores = scores
        self.add_state("logits", default=[], dist_reduce_fx="cat")
        self.add_state("valid", default=[], dist_reduce_fx="cat")

    def update(self, logits: Tensor, valid: Tensor) -> None:
        lab = valid.bool().any(dim=1)
        self.logits.append(logits[lab].float())
        self.valid.append(valid[lab].to(torch.uint8))

    def compute(self) -> dict[str, Tensor]:
        logits = dim_zero_cat(self.logits)
        valid = dim_zero_cat(self.valid).bool()
        per_class, micro = F.ClassScores(logits, self.scores).average_precision(
            torch.arange(len(logits)), valid
        )
        return {
            "map_macro": torch.tensor(F.mean_average_precision(per_class), dtype=torch.float64),
            "map_micro": torch.tensor(micro, dtype=torch.float64),
        }


class MultilabelSetMetrics(Metric):
    """``precision``, ``recall``, ``f1`` (micro), ``subset_accuracy`` and ``hamming_loss``
    (percent) of predicted label sets; ``mode`` and its parameters as in
    :func:`imagenet_multilabel.metrics.functional.predicted_set_counts`."""

    full_state_update = False
    is_differentiable = False

    def __init__(
        self,
        mode: str = "vartopk",
        scores: str = "softmax",
        k: int = 1,
        threshold: float = 0.5,
        mass: float = 0.9,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if mode not in F.PRED_MODES:
            raise ValueError(f"mode must be one of {F.PRED_MODES}, got {mode!r}")
        self.mode, self.scores, self.k = mode, scores, k
        self.threshold, self.mass = threshold, mass
        for name in ("tp", "fp", "fn", "exact", "images", "cells"):
            self.add_state(name, torch.tensor(0), dist_reduce_fx="sum")

    def update(self, logits: Tensor, valid: Tensor) -> None:
        valid = valid.bool()
        r = F.Ranking(logits, valid, self.k if self.mode == "topk" else 1)
        size, tp = F.predicted_set_counts(
            r,
            F.ClassScores(logits, self.scores),
            valid,
            self.mode,
            self.k,
            self.threshold,
            self.mass,
        )
        n_valid = r.n_valid[r.labeled]
        self.tp += int(tp.sum())
        self.fp += int((size - tp).sum())
        self.fn += int((n_valid - tp).sum())
        self.exact += int(((tp == size) & (tp == n_valid)).sum())
        self.images += len(n_valid)
        self.cells += len(n_valid) * logits.shape[1]

    def compute(self) -> dict[str, Tensor]:
        sums = (self.tp, self.fp, self.fn, self.exact, self.images, self.cells)
        out = F.set_metrics_from_sums(*(int(x) for x in sums))
        return {k: torch.tensor(v, dtype=torch.float64) for k, v in out.items()}
