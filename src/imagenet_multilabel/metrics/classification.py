"""torchmetrics classes for ranking accuracies against sets of valid labels.

Thin stateful wrappers over :mod:`imagenet_multilabel.metrics.functional`: each batch is
reduced to integer counts (``sum`` states), so results are exact and identical on one
process and on many, whatever the sharding. Inputs: ``logits (B, C)``, ``valid (B, C)``
(bool or 0/1), ``target (B,)`` where needed; images with an empty label set are skipped.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

from . import functional as F


def _pct(num: Tensor, den: Tensor) -> Tensor:
    return torch.where(den > 0, 100.0 * num.double() / den.double().clamp(min=1), float("nan"))


class RealAccuracy(Metric):
    """ReaL top-k accuracy (percent): any of the ``top_k`` best classes is a valid label."""

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self, top_k: int = 1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.top_k = top_k
        self.add_state("correct", torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0), dist_reduce_fx="sum")

    def update(self, logits: Tensor, valid: Tensor) -> None:
        hits = F.real_topk_correct(logits, valid.bool(), (self.top_k,))[self.top_k]
        self.correct += int(hits.sum())
        self.total += len(hits)

    def compute(self) -> Tensor:
        return _pct(self.correct, self.total)


class VariableTopK(Metric):
    """Variable top-k accuracy (percent), ``k`` = the image's number of valid labels.

    ``strict=True``: all ``k`` labels are among the ``k`` best classes; ``strict=False``:
    mean share of the ``k`` labels found there. The partial sums are kept per ``k`` as
    integers, so the result does not depend on how images are split into batches.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self, num_classes: int, strict: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.strict = strict
        self.add_state("found", torch.zeros(num_classes + 1, dtype=torch.long), "sum")
        self.add_state("correct", torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0), dist_reduce_fx="sum")

    def update(self, logits: Tensor, valid: Tensor) -> None:
        r = F.Ranking(logits, valid.bool(), 1)
        lab = r.labeled
        self.found.index_add_(0, r.n_valid[lab], r.found[lab])
        self.correct += int(r.vartopk_strict().sum())
        self.total += int(lab.sum())

    def compute(self) -> Tensor:
        if self.strict:
            return _pct(self.correct, self.total)
        k = torch.arange(1, len(self.found), dtype=torch.float64)
        return _pct((self.found[1:].double() / k).sum(), self.total)


class SubgroupAccuracy(Metric):
    """Per label-count subgroup (1, 2, 3, 4+ labels): ``num_images@labels=g``,
    ``top1@labels=g`` (original label), ``real_top1@labels=g`` and
    ``vartopk_strict@labels=g``, all percent except the counts."""

    full_state_update = False
    is_differentiable = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        g = len(F.LABEL_GROUPS)
        for name in ("count", "top1", "real_top1", "strict"):
            self.add_state(name, torch.zeros(g, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: Tensor, target: Tensor, valid: Tensor) -> None:
        r = F.Ranking(logits, valid.bool(), 1)
        group = r.group()
        lab = group >= 0
        g = group[lab]
        self.count += torch.bincount(g, minlength=len(F.LABEL_GROUPS))
        for state, hit in (
            (self.top1, r.top[:, 0] == target),
            (self.real_top1, r.hits[:, 0]),
            (self.strict, r.found == r.n_valid),
        ):
            state += torch.bincount(g, weights=hit[lab].double(), minlength=len(state)).long()

    def compute(self) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        for i, name in enumerate(F.LABEL_GROUPS):
            out[f"num_images@labels={name}"] = self.count[i].double()
            out[f"top1@labels={name}"] = _pct(self.top1[i], self.count[i])
            out[f"real_top1@labels={name}"] = _pct(self.real_top1[i], self.count[i])
            out[f"vartopk_strict@labels={name}"] = _pct(self.strict[i], self.count[i])
        return out


class ASMA(SubgroupAccuracy):
    """Aggregate Subgroup Model Accuracy (percent); definition in
    :func:`imagenet_multilabel.metrics.functional.asma`."""

    higher_is_better = True

    def __init__(self, min_subgroup_size: int = 1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.min_subgroup_size = min_subgroup_size

    def compute(self) -> Tensor:  # type: ignore[override]
        value = F.asma(self.strict, self.count, self.min_subgroup_size)
        return torch.tensor(value, dtype=torch.float64)
