"""Average precision, as scikit-learn's ``average_precision_score`` (step-wise: all tied
scores share one threshold), per class and micro (every image x class pair pooled), in
percent; NaN for a class without a positive.

Two ways to the same counts: sorting each class's scores (:func:`average_precision`, any
scores) and, for softmax scores, counting them on a grid in logit space
(:func:`_softmax_average_precision`, exact as well, much faster at ImageNet size).
:func:`scores_average_precision` picks the grid where it applies.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from imagenet_multilabel.core.runtime import one_torch_thread, run_in_threads

if TYPE_CHECKING:
    from imagenet_multilabel.scoring.metrics.scores import ClassScores


def _average_precision_blocks(
    block: Callable[[int, int], Tensor], valid: Tensor, tau_micro: float, block_cols: int = 32
) -> tuple[Tensor, float]:
    """Per-class AP (percent, NaN without positives) and micro AP (percent).

    ``block(c0, c1)``: a fresh contiguous float64 tensor ``(c1 - c0, N)``, the scores of
    classes ``c0..c1-1`` for every image that counts (it is sorted in place); ``valid
    (N, C)``. Each class's scores are sorted once. The precision at a positive with score
    ``s`` is ``#positives >= s / #scores >= s`` (the whole tie group of ``s`` counts, as
    in scikit-learn's step-wise AP); a class's AP is its mean over the class's positives.
    The micro AP pools every score ``>= tau_micro`` (at most the lowest positive score)
    and sorts them once.
    """
    n_classes = valid.shape[1]
    n_pos = valid.sum(dim=0)
    ap_sum = np.zeros(n_classes)
    pooled: list[np.ndarray] = []
    positives: list[np.ndarray] = []
    pos_rows, pos_cls = valid.nonzero(as_tuple=True)
    by_class = torch.sort(pos_cls, stable=True).indices
    pos_rows, pos_cls = pos_rows[by_class], pos_cls[by_class]
    class_bounds = torch.searchsorted(pos_cls, torch.arange(n_classes + 1)).numpy()
    for c0 in range(0, n_classes, block_cols):
        c1 = min(n_classes, c0 + block_cols)
        cols = block(c0, c1)
        lo_all, hi_all = class_bounds[c0], class_bounds[c1]
        cls = (pos_cls[lo_all:hi_all] - c0).numpy()
        pos = cols[pos_cls[lo_all:hi_all] - c0, pos_rows[lo_all:hi_all]].numpy()
        pos = pos[np.lexsort((pos, cls))]  # by class, then score ascending
        bounds = class_bounds[c0 : c1 + 1] - lo_all
        sorted_np = cols.numpy()
        sorted_np.sort(axis=1)
        for j, row in enumerate(sorted_np):
            lo, hi = bounds[j], bounds[j + 1]
            if hi > lo:
                ap_sum[c0 + j] = _precision_sum(pos[lo:hi], 0, [row])  # row: all n scores
            pooled.append(row[np.searchsorted(row, tau_micro, side="left") :])
        positives.append(pos)
    has = (n_pos > 0).numpy()
    per_class = np.full(n_classes, np.nan)
    per_class[has] = 100.0 * ap_sum[has] / n_pos.numpy()[has]
    pos_all = np.concatenate(positives) if positives else np.zeros(0)
    if len(pos_all) and pos_all.min() < tau_micro:
        raise RuntimeError("average precision: a positive scored below the micro threshold")
    micro = _micro_ap(np.concatenate(pooled) if pooled else np.zeros(0), pos_all)
    return torch.from_numpy(per_class), 100.0 * micro


def _micro_ap(all_vals: np.ndarray, pos_vals: np.ndarray) -> float:
    """AP (fraction) of the flattened score/label pairs; ``all_vals`` holds at least every
    entry that scores at or above the lowest positive."""
    if len(pos_vals) == 0:
        return float("nan")
    all_vals.sort()
    pos_vals = np.sort(pos_vals)
    return _precision_sum(pos_vals, 0, [all_vals]) / len(pos_vals)


def average_precision(scores: Tensor, valid: Tensor) -> tuple[Tensor, float]:
    """Average precision in percent, as scikit-learn's ``average_precision_score``:
    per class ``(C,)`` float64 (NaN for a class with no positive) and micro (all image x
    class pairs pooled). Every row counts: drop unlabeled images before calling."""
    scores = scores.double()
    tau = scores[valid].min().item() if bool(valid.any()) else math.inf

    def block(c0: int, c1: int) -> Tensor:  # a copy: it is sorted in place
        return scores[:, c0:c1].T.clone(memory_format=torch.contiguous_format)

    return _average_precision_blocks(block, valid, tau)


def mean_average_precision(per_class: Tensor) -> float:
    """Mean of the per-class APs over the classes that have at least one positive."""
    has = ~torch.isnan(per_class)
    return per_class[has].mean().item() if bool(has.any()) else float("nan")


# ------------------------------------------------- average precision from softmax logits
#
# The softmax score of image i for class j is ``p_ij = exp(l_ij - lse_i)`` in float64. AP
# only needs, for each positive (i, j) with score s, how many scores of its class (macro)
# or of all classes (micro) are ``>= s``. Sorting 50M scores for that is the slow part, so
# instead every score is placed on a grid in logit space, ``u = (lse_i - l_ij) * scale``
# in float32 (no exp), and counted per grid bucket. ``y = lse_i - l_ij = -log p_ij``
# decreases with the score, and ``u / scale`` is ``y`` up to a rounding error below
# ``delta``. Every positive marks the buckets that ``y +- delta`` can fall in as *dirty*;
# a score in a clean bucket is then certainly above (lower bucket) or below (higher
# bucket) every positive's score, by at least 2^-30 in log space: far beyond any rounding
# of exp. The scores in dirty buckets (a few percent) are computed exactly, with the same
# float64 ``exp(l - lse)`` as everywhere else, and compared exactly, so every count, and
# so every AP, is the one a full sort gives, ties included.
#
# Runs of adjacent dirty buckets cut the grid into clean segments. Per class, the scores
# are counted per segment (one bincount over class x segment per block of classes); the
# count of scores ``>= s`` is the sum of the clean segments below the positive's dirty
# run plus the exact count among the class's dirty scores (every dirty score of an
# earlier run is above ``s``, of a later run below). Summed over classes, the same
# histograms give the micro counts. To keep the class x segment histograms small, at most
# ``_AP_MAX_SEGMENTS`` segments stay clean: the other gaps between dirty runs, those that
# a sample of the rows shows to hold the fewest scores, are made dirty (their scores are
# then computed exactly, which changes no count).

_AP_FINE_BUCKETS = 1 << 19
_AP_BLOCK_COLS = 16  # classes per block: one 64-byte line of float32 logits per row
_AP_MAX_SEGMENTS = 4096
_AP_SAMPLE_EVERY = 64  # rows sampled to weigh the gaps
_AP_MARGIN = 2.0**-30


def _mark(lo: np.ndarray, hi: np.ndarray, width: int) -> np.ndarray:
    """Bool ``(width,)``: True on the buckets ``lo[t]..hi[t]`` (inclusive) of every ``t``."""
    diff = np.bincount(lo, minlength=width + 1) - np.bincount(hi + 1, minlength=width + 1)
    return np.cumsum(diff[:width]) > 0


def _fill_gaps(dirty: np.ndarray, weight: Callable[[], np.ndarray], keep: int) -> np.ndarray:
    """``dirty`` with clean gaps made dirty until at most ``keep`` remain: the last one (the
    scores below every positive) and the ``keep - 1`` holding the most ``weight()`` (per
    bucket) stay clean."""
    edges = np.flatnonzero(dirty[1:] != dirty[:-1]) + 1
    starts = np.concatenate(([0], edges))
    ends = np.concatenate((edges, [len(dirty)]))
    gaps = np.flatnonzero(~dirty[starts])[:-1]  # the last gap always stays
    if len(gaps) < keep:
        return dirty
    mass = np.concatenate(([0], np.cumsum(weight())))
    mass = mass[ends[gaps]] - mass[starts[gaps]]
    fill = gaps[np.argsort(-mass, kind="stable")[max(0, keep - 1) :]]
    return dirty | _mark(starts[fill], ends[fill] - 1, len(dirty))


def _grid(y_pos: np.ndarray, lse_abs: float) -> tuple[float, np.ndarray, np.ndarray, int] | None:
    """The grid of the positives' ``y = -log score`` (``y_pos``; ``lse_abs``: the largest
    ``|lse|`` of the rows): ``(scale, lo, hi, width)``, each positive's dirty buckets
    ``lo..hi`` of ``width``; ``None`` where it cannot be exact (scores below e^-700)."""
    y_max = float(y_pos.max())
    if y_max > 700.0:
        return None
    # u = a - scale * l in float32 with a = float32(scale * lse): three roundings of at
    # most 2^-24 relative, so |u / scale - y| <= 2^-23 (|lse| + |y|) =: eps for every score
    # that lands on the grid (|y| < y_max + 1). A clean bucket lies wholly below
    # (y_p - delta) * scale or above (y_p + delta) * scale for every positive p; with
    # delta >= eps + margin its scores are more than ``margin`` away from every positive's
    # in y. delta takes twice eps; 2^-20 buckets cover the float64 rounding of the bounds.
    delta = _AP_MARGIN + 2.0**-22 * (lse_abs + y_max + 1.0)
    scale = float(np.float32(_AP_FINE_BUCKETS / (y_max + 2 * delta)))
    if not math.isfinite(scale) or scale * (lse_abs + y_max + 1.0) > 1e30:
        return None
    lo = np.maximum(np.floor((y_pos - delta) * scale - 2.0**-20), 0).astype(np.int64)
    hi = np.floor((y_pos + delta) * scale + 2.0**-20).astype(np.int64)
    width = int(hi.max()) + 2  # the last bucket is never dirty: scores below every positive
    return scale, lo, hi, width


def _segments(dirty: np.ndarray) -> tuple[np.ndarray, int, Tensor]:
    """Of each bucket of the grid (``dirty``: whether it is): the number of dirty runs up
    to it, the number of clean segments ``n_seg`` (the runs cut the grid into segments
    0..n_seg-1) and its segment (``n_seg``: dirty), in the smallest int dtype."""
    run = np.cumsum(dirty & ~np.concatenate(([False], dirty[:-1])))  # dirty runs so far
    n_seg = int(run[-1]) + 1
    table = torch.from_numpy(np.where(dirty, n_seg, run).astype(np.int32))
    return run, n_seg, table.to(torch.int16 if n_seg + 1 < 2**15 else torch.int32)


def _micro_average_precision(
    parts: list[tuple[Tensor, np.ndarray]], n_seg: int, pos_run: np.ndarray, pos: np.ndarray
) -> float:
    """Micro AP (a fraction) from the blocks of :func:`_softmax_average_precision`
    (``parts``: each block's histogram over the ``n_seg`` clean segments and the dirty id,
    and its dirty scores): for every positive (scores ``pos``, ascending; ``pos_run``: the
    dirty run of each), the count of scores of any class ``>=`` its own."""
    hist_all = torch.stack([h for h, _ in parts]).sum(dim=0)
    # every dirty score, in two sorted halves (sorted on two threads)
    halves = [[d for _, d in parts[: len(parts) // 2]], [d for _, d in parts[len(parts) // 2 :]]]
    dirty_sorted = run_in_threads([lambda h=h: np.sort(np.concatenate(h)) for h in halves if h])
    below_all = np.concatenate(([0], np.cumsum(hist_all[:n_seg].numpy())))
    return _precision_sum(pos, below_all[pos_run], dirty_sorted) / len(pos)


def _precision_sum(pos: np.ndarray, clean: np.ndarray | int, dirty: Iterable[np.ndarray]) -> float:
    """The sum of the precision at each positive (scores ``pos``, ascending): the positives
    ``>=`` it over all scores ``>=`` it, counted in sorted arrays (``dirty``: the exactly
    computed scores of the grid, or all of them) plus ``clean`` (per positive: those
    counted in the grid's clean segments, or none)."""
    count = clean
    for d in dirty:
        count = count + (len(d) - np.searchsorted(d, pos, side="left"))
    tp = len(pos) - np.searchsorted(pos, pos, side="left")
    return float(np.sum(tp / count))


def _positives(
    logits: Tensor, lse: Tensor, valid: Tensor, rows_mask: Tensor
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The positives of the rows where ``rows_mask`` is True, row by row: each one's
    class, its score ``exp(l - lse)`` (as ClassScores.rows) and ``y = lse - l`` (-log
    score, as the grid sees it)."""
    n_classes = logits.shape[1]
    rows, cols = np.divmod(np.flatnonzero(valid.contiguous().numpy()), n_classes)
    keep = rows_mask.numpy()[rows]
    rows, cols = rows[keep], cols[keep]
    l_pos = logits.view(-1)[torch.from_numpy(rows * n_classes + cols)].double()
    lse_pos = lse[torch.from_numpy(rows)]
    return cols, torch.exp(l_pos - lse_pos).numpy(), (lse_pos - l_pos).numpy()


def _softmax_average_precision(
    logits: Tensor, lse: Tensor, best: Tensor, valid: Tensor, rows_mask: Tensor
) -> tuple[Tensor, float] | None:
    """Per-class AP (percent, NaN without positives) and micro AP (percent) of the softmax
    scores of the rows where ``rows_mask`` is True, exactly as :func:`average_precision`
    on those scores; ``best`` is each row's largest logit. ``None`` when the inputs fall
    outside what the grid handles exactly (non-finite logits, scores below e^-700): the
    caller then sorts."""
    n, n_classes = logits.shape
    if not bool(torch.isfinite(best).all()) or n_classes == 0:
        return None
    logits = logits.contiguous()
    cols, score_pos, y_pos = _positives(logits, lse, valid, rows_mask)
    n_pos = np.bincount(cols, minlength=n_classes)
    if len(cols) == 0:
        return torch.full((n_classes,), math.nan, dtype=torch.float64), math.nan
    grid = _grid(y_pos, float(lse[rows_mask].abs().max()))
    if grid is None:
        return None
    scale, lo, hi, width = grid
    top_bucket = float(width - 1)
    a = torch.where(rows_mask, lse * scale, math.inf).float()  # left-out rows: u = inf

    def buckets(a_rows: Tensor, logit_rows: Tensor) -> Tensor:
        """The grid bucket of each score (flat int32): u = a - scale * l, clamped."""
        u = torch.sub(a_rows[:, None], logit_rows, alpha=scale)
        return u.clamp_(0.0, top_bucket).to(torch.int32).view(-1)

    def sampled_buckets() -> np.ndarray:
        sample = buckets(a[::_AP_SAMPLE_EVERY], logits[::_AP_SAMPLE_EVERY])
        return torch.bincount(sample, minlength=width).numpy()

    run, n_seg, table = _segments(
        _fill_gaps(_mark(lo, hi, width), sampled_buckets, _AP_MAX_SEGMENTS)
    )
    bins = n_seg + 1

    # positives by class, then score ascending; the dirty run of each one's score
    by_score = np.argsort(score_pos, kind="stable")
    order = by_score[np.argsort(cols[by_score], kind="stable")]
    p_score, p_run = score_pos[order], run[lo[order]]
    p_bounds = np.concatenate(([0], np.cumsum(n_pos)))
    block = max(1, min(n_classes, _AP_BLOCK_COLS))
    ap_sum = np.zeros(n_classes)

    def scan(c0: int) -> tuple[Tensor, np.ndarray]:
        """Classes c0..c0+block-1: their AP sums; the block's micro histogram and its
        dirty scores."""
        c1 = min(n_classes, c0 + block)
        w = c1 - c0
        slab = logits[:, c0:c1].contiguous()
        seg = table.index_select(0, buckets(a, slab))
        offset = torch.arange(w, dtype=torch.int32) * bins
        hist = torch.bincount((seg.view(n, w) + offset).view(-1), minlength=w * bins)
        hist = hist.view(w, bins)
        at = np.flatnonzero(seg.numpy() == n_seg)
        r, j = np.divmod(at, w)
        exact = slab.view(-1)[torch.from_numpy(at)].double()
        exact = torch.exp(exact - lse[torch.from_numpy(r)]).numpy()  # as ClassScores.rows
        by_class = np.argsort(j.astype(np.int16), kind="stable")  # w <= 2^15 classes
        exact = exact[by_class]
        j_bounds = np.searchsorted(j[by_class], np.arange(w + 1))
        below = hist[:, :n_seg].cumsum(dim=1).numpy()
        for jj in range(w):
            scores = exact[j_bounds[jj] : j_bounds[jj + 1]]
            scores.sort()
            c = c0 + jj
            lo_p, hi_p = p_bounds[c], p_bounds[c + 1]
            if hi_p == lo_p:
                continue
            clean = below[jj, p_run[lo_p:hi_p] - 1]
            ap_sum[c] = _precision_sum(p_score[lo_p:hi_p], clean, [scores])
        return hist.sum(dim=0), exact

    parts = run_in_threads([lambda c0=c0: scan(c0) for c0 in range(0, n_classes, block)])
    micro = _micro_average_precision(parts, n_seg, run[lo[by_score]], score_pos[by_score])
    has = n_pos > 0
    per_class = np.full(n_classes, np.nan)
    per_class[has] = 100.0 * ap_sum[has] / n_pos[has]
    return torch.from_numpy(per_class), 100.0 * micro


@one_torch_thread()
def scores_average_precision(
    scores: ClassScores, index: Tensor, valid: Tensor
) -> tuple[Tensor, float]:
    """:func:`average_precision` of ``scores`` over the rows ``index`` (e.g. the labeled
    images). Softmax scores of distinct rows are counted on the grid of
    :func:`_softmax_average_precision`; anything else is sorted."""
    if scores.kind == "softmax" and scores.best is not None:
        mask = torch.zeros(scores.logits.shape[0], dtype=torch.bool)
        mask[index] = True
        if int(mask.sum()) == len(index):
            fast = _softmax_average_precision(scores.logits, scores.lse, scores.best, valid, mask)
            if fast is not None:
                return fast
    every = len(index) == scores.logits.shape[0]
    valid = valid if every else valid[index]
    rows, cols = valid.nonzero(as_tuple=True)
    approx = scores.at(index[rows], cols)
    tau = approx.min().item() if len(approx) else math.inf
    tau -= abs(tau) * 1e-9  # ``at`` may differ from the blocks in the last bits
    return _average_precision_blocks(scores.column_blocks(index), valid, tau)
