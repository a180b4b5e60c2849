"""Per-class scores of a logit matrix: softmax (one distribution over the classes) or
sigmoid (independent per class, for models fine-tuned multi-label), in float64."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from imagenet_multilabel.scoring.metrics.ranking import RowSummary

SCORE_KINDS: tuple[str, ...] = ("softmax", "sigmoid")


class ClassScores:
    """Per-class scores of a logit matrix, computed on demand in float64: ``softmax``
    (``exp(l - lse)``, ``lse`` the row's log-sum-exp of :class:`RowSummary`) or
    ``sigmoid`` (independent per class, for models fine-tuned multi-label).
    ``summary``: the shared :class:`RowSummary` of ``logits`` (``lse`` and the row maxima
    are reused)."""

    def __init__(
        self, logits: Tensor, kind: str = "softmax", summary: RowSummary | None = None
    ) -> None:
        if kind not in SCORE_KINDS:
            raise ValueError(f"scores must be one of {SCORE_KINDS}, got {kind!r}")
        self.logits, self.kind = logits, kind
        self.best: Tensor | None = None  # each row's largest logit, float64
        if summary is None and kind == "softmax":
            summary = RowSummary(logits, 0)  # its softmax statistics only
        if summary is not None:
            self.best, self.lse = summary.m, summary.lse

    def rows(self, index: Tensor) -> Tensor:
        """Scores ``(len(index), C)`` of the rows ``index``."""
        z = self.logits[index].double()
        if self.kind == "softmax":
            return z.sub_(self.lse[index, None]).exp_()
        return z.sigmoid_()

    def at(self, rows: Tensor, cols: Tensor) -> Tensor:
        """Scores of single entries (equal to :meth:`rows` up to rounding)."""
        z = self.logits[rows, cols].double()
        if self.kind == "softmax":
            return torch.exp(z - self.lse[rows])
        return torch.sigmoid(z)

    def top1(self) -> Tensor:
        """Score of each row's best class (the confidence)."""
        best = self.best if self.best is not None else self.logits.max(dim=1).values.double()
        if self.kind == "softmax":
            return torch.exp(best - self.lse)
        return torch.sigmoid(best)

    def column_blocks(self, index: Tensor) -> Callable[[int, int], Tensor]:
        """``block(c0, c1)``: the scores of classes ``c0..c1-1`` for the rows ``index``,
        a fresh contiguous float64 tensor ``(c1 - c0, len(index))`` (a class per row, as
        average precision sorts them, in place)."""
        every = len(index) == self.logits.shape[0]
        logits = self.logits if every else self.logits[index]
        lse = self.lse[index] if self.kind == "softmax" else None

        def block(c0: int, c1: int) -> Tensor:
            z = torch.empty((c1 - c0, len(index)), dtype=torch.float64)
            if lse is None:
                return z.copy_(logits[:, c0:c1].T).sigmoid_()
            return torch.sub(logits[:, c0:c1].T, lse, out=z).exp_()

        return block
