"""Rankings: the best classes of each row, ties broken by the lower class index, shared by
every metric that reads a ranking.

Inputs follow one convention across :mod:`imagenet_multilabel.scoring.metrics`:

- ``logits``: float tensor ``(N, C)`` of raw model outputs;
- ``target``: int64 tensor ``(N,)`` with the original single label of each image;
- ``valid``: bool tensor ``(N, C)``, the multi-hot set of valid labels of each image (an
  all-False row means "no valid label": such images are left out of multi-label metrics).

Among equal scores the lower class index ranks first, so every top-k set is well defined.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor

from imagenet_multilabel.core.runtime import one_torch_thread, outer_threads, run_in_threads
from imagenet_multilabel.data.labels.sets import label_counts
from imagenet_multilabel.scoring.metrics.names import LABEL_GROUPS


def _break_ties(scores: Tensor, vals: Tensor, idx: Tensor) -> None:
    """``torch.topk`` alone does not promise an order among ties: re-rank, with a stable
    sort, the rows of ``idx`` (its indices, best first, one more than needed) whose
    ``vals`` hold a tie. In place."""
    tied = (vals[:, 1:] == vals[:, :-1]).any(dim=1)
    if bool(tied.any()):
        rows = tied.nonzero().squeeze(1)
        order = torch.sort(scores[rows], dim=1, descending=True, stable=True).indices
        idx[rows] = order[:, : idx.shape[1]]


def ranked_topk(scores: Tensor, k: int) -> Tensor:
    """Indices ``(N, k)`` of the ``k`` highest scores per row, best first, ties broken by
    the lower class index (rows with a tie among their ``k + 1`` best scores are re-ranked
    with a stable sort)."""
    n, c = scores.shape
    k = max(0, min(int(k), c))
    if c == 0 or n == 0:
        return torch.zeros((n, k), dtype=torch.long)
    vals, idx = torch.topk(scores, min(k + 1, c), dim=1, largest=True, sorted=True)
    _break_ties(scores, vals, idx)
    return idx[:, :k]


class RowSummary:
    """What the metrics of one dataset read from each row of logits, computed once and
    shared by every head.

    One pass over the rows gives ``top (N, K)``, the ``K`` best classes of each row, best
    first, ties broken by the lower class index (equal to :func:`ranked_topk`), and the
    softmax statistics in float64: ``m = max_j l_j``, ``s = sum_j exp(l_j - m)`` and
    ``lse = m + log s`` (softmax ``p_j = exp(l_j - lse)``, top-1 probability ``1 / s``).
    ``K`` is ``min(k, C)``; :meth:`ranked` ranks further when a metric needs more classes.
    Non-float logits are converted to float32 (``logits`` holds what the metrics use).
    The rows are cut in chunks of ``chunk_rows``, the chunks shared out between threads.
    """

    @one_torch_thread()
    def __init__(self, logits: Tensor, k: int = 5, chunk_rows: int = 128) -> None:
        if logits.dtype not in (torch.float32, torch.float64):
            logits = logits.float()
        self.logits = logits
        n, c = logits.shape
        k = max(0, min(int(k), c))
        kk = min(k + 1, c)  # one more: a tie at the k-th place shows
        vals = logits.new_empty((n, kk))
        top = torch.empty((n, kk), dtype=torch.long, device=logits.device)
        self.s = torch.zeros(n, dtype=torch.float64, device=logits.device)

        def rows(a: int, b: int) -> None:
            rows_ = min(chunk_rows, b - a)
            buf = torch.empty((rows_, c), dtype=torch.float64, device=logits.device)
            for r0 in range(a, b, chunk_rows):
                r1 = min(b, r0 + chunk_rows)
                torch.topk(logits[r0:r1], kk, dim=1, out=(vals[r0:r1], top[r0:r1]))
                z = buf[: r1 - r0]
                z.copy_(logits[r0:r1]).sub_(vals[r0:r1, :1]).exp_()
                torch.sum(z, dim=1, out=self.s[r0:r1])

        if n and c:
            parts = max(1, min(outer_threads(), -(-n // chunk_rows)))
            cuts = [n * i // parts for i in range(parts + 1)]
            if logits.device.type == "cpu":
                run_in_threads([lambda a=a, b=b: rows(a, b) for a, b in itertools.pairwise(cuts)])
            else:
                rows(0, n)
            _break_ties(logits, vals, top)
        self.top = top[:, :k]
        self.m = vals[:, 0].double() if c else torch.full((n,), -math.inf, dtype=torch.float64)
        self.lse = self.m + torch.log(self.s)

    def ranked(self, k: int) -> Tensor:
        """The ``min(k, C)`` best classes of each row ``(N, min(k, C))``, best first."""
        k = max(0, min(int(k), self.logits.shape[1]))
        if self.top.shape[1] < k:
            self.top = ranked_topk(self.logits, k)
        return self.top[:, :k]


class Ranking:
    """The ranked view of a batch that every multi-label ranking metric reads.

    ``top (N, K)``: class indices best first (ties: lower index first), ``K`` at least
    ``k`` and at least the largest label set; ``hits (N, K)``: ``top`` is a valid label;
    ``n_valid (N,)``: size of each label set; ``found (N,)``: valid labels among the
    ``n_valid`` best classes (the variable top-k count). ``summary``: the shared
    :class:`RowSummary` of ``logits`` (its ranking is reused).
    """

    def __init__(
        self, logits: Tensor, valid: Tensor, k: int = 5, summary: RowSummary | None = None
    ) -> None:
        self.n_valid = label_counts(valid)
        kmax = max(k, int(self.n_valid.max())) if len(self.n_valid) else k
        if summary is not None:
            self.top = summary.ranked(kmax)
        else:
            self.top = ranked_topk(logits, kmax)
        self.hits = valid.gather(1, self.top)
        if self.hits.shape[1]:
            cum = self.hits.cumsum(dim=1)
            at = (self.n_valid - 1).clamp(min=0)[:, None]
            self.found = torch.where(self.n_valid > 0, cum.gather(1, at).squeeze(1), 0)
        else:
            self.found = torch.zeros_like(self.n_valid)

    @property
    def labeled(self) -> Tensor:
        return self.n_valid > 0

    def real_correct(self, k: int) -> Tensor:
        """Per labeled image: any of the ``k`` best classes is a valid label (ReaL top-k)."""
        return self.hits[self.labeled, :k].any(dim=1)

    def vartopk_strict(self) -> Tensor:
        """Per labeled image: its ``k = n_valid`` best classes are exactly its valid labels."""
        lab = self.labeled
        return self.found[lab] == self.n_valid[lab]

    def vartopk_partial(self) -> Tensor:
        """Per labeled image: share of its ``k`` valid labels found among its ``k`` best."""
        lab = self.labeled
        return self.found[lab].double() / self.n_valid[lab].double()

    def group(self) -> Tensor:
        """Label-count subgroup index per image: 0..3 for 1, 2, 3, 4+ labels; -1 for none."""
        return self.n_valid.clamp(max=len(LABEL_GROUPS)) - 1
