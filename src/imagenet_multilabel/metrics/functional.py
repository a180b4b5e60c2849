"""The functional core: every metric of the project is computed here, once, from tensors.

Inputs follow one convention:
- ``logits``: float tensor ``(N, C)`` of raw model outputs;
- ``target``: int64 tensor ``(N,)`` with the original single label of each image;
- ``valid``: bool tensor ``(N, C)``, the multi-hot set of valid labels of each image (an
  all-False row means "no valid label": such images are left out of multi-label metrics).

Accuracies, and every other share (precision, recall, F1, mAP, Hamming loss, ECE), are
returned in percent, as Python floats; ``nll`` is in nats. A metric over an empty set of
images is NaN. Computation is done in float64 where sums are involved, so results do not
depend on batch or shard order.

Rankings break ties by class index: among equal scores the lower class index ranks
first, so every top-k set is well defined. Average precision follows scikit-learn's
``average_precision_score`` (step-wise, all tied scores share one threshold).

Label-count subgroups: images with 1, 2, 3 and 4 or more valid labels, named
``@labels=1``, ``@labels=2``, ``@labels=3``, ``@labels=4+``.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import Tensor

from ..runtime import in_caller_modes

LABEL_GROUPS: tuple[str, ...] = ("1", "2", "3", "4+")
PRED_MODES: tuple[str, ...] = ("vartopk", "topk", "threshold", "cumulative")
SCORE_KINDS: tuple[str, ...] = ("softmax", "sigmoid")
_CHUNK_ROWS = 2048

# Threads. The metrics run many mid-sized torch ops in a row; with torch's own (OpenMP)
# intra-op threads each of them synchronises its threads, and on a busy machine, where
# a core is often taken, that costs several times the work itself. So the entry points
# run with one torch thread, and the two loops that carry the work (the row pass of
# RowSummary and the AP scan) share their pieces out between as many Python threads as
# torch had (torch ops release the GIL).
_threads_lock = threading.Lock()
_threads = {"depth": 0, "before": 1}


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Torch ops single-threaded inside (re-entrant, also across threads); torch's thread
    count is restored when the last one exits, and is what :func:`_in_threads` uses."""
    with _threads_lock:
        if _threads["depth"] == 0:
            _threads["before"] = torch.get_num_threads()
            torch.set_num_threads(1)
        _threads["depth"] += 1
    try:
        yield
    finally:
        with _threads_lock:
            _threads["depth"] -= 1
            if _threads["depth"] == 0:
                torch.set_num_threads(_threads["before"])


def _in_threads(jobs: list[Callable[[], object]]) -> list[object]:
    """Results of ``jobs``, run on as many Python threads as torch has outside
    :func:`one_torch_thread`, their torch ops single-threaded."""
    with one_torch_thread():
        workers = min(_threads["before"], len(jobs))
        if workers <= 1:
            return [job() for job in jobs]
        run = in_caller_modes(lambda job: job())
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(run, jobs))


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


def topk_correct(logits: Tensor, target: Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[int, Tensor]:
    """Per-image bool: is ``target`` among the ``k`` highest logits (ties broken by index)."""
    kmax = min(max(ks), logits.shape[1])
    top = ranked_topk(logits, kmax)
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
            parts = max(1, min(_threads["before"], -(-n // chunk_rows)))
            cuts = [n * i // parts for i in range(parts + 1)]
            if logits.device.type == "cpu":
                _in_threads([lambda a=a, b=b: rows(a, b) for a, b in itertools.pairwise(cuts)])
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


@one_torch_thread()
def single_label_metrics(
    logits: Tensor, target: Tensor, n_bins: int = 15, summary: RowSummary | None = None
) -> dict[str, float]:
    """top1, top5 (percent), nll and ece (percent) against the original single label.
    ``summary``: the shared :class:`RowSummary` of ``logits``, if already made."""
    p = summary if summary is not None else RowSummary(logits, 5)
    logits = p.logits
    top = p.ranked(5)
    hit = top == target[:, None]
    hits = {k: hit[:, : min(k, top.shape[1])].any(dim=1) for k in (1, 5)}
    m, s = p.m, p.s
    confidence = 1.0 / s
    logp_target = logits.gather(1, target[:, None]).squeeze(1).double() - m - torch.log(s)
    return {
        "top1": accuracy(hits[1]),
        "top5": accuracy(hits[5]),
        "nll": -logp_target.mean().item() if len(target) else float("nan"),
        "ece": expected_calibration_error(confidence, hits[1], n_bins),
    }


# --------------------------------------------------------------------------- ranking


def label_counts(valid: Tensor) -> Tensor:
    """Number of valid labels of each image ``(N,)`` int64, as ``valid.sum(dim=1)`` (on
    CPU counted from the positions of the True entries: much faster on a bool matrix)."""
    n, c = valid.shape
    if valid.device.type != "cpu" or valid.dtype != torch.bool or c == 0:
        return valid.sum(dim=1)
    at = np.flatnonzero(valid.contiguous().numpy())
    return torch.from_numpy(np.bincount(at // c, minlength=n).astype(np.int64))


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


def real_topk_correct(
    logits: Tensor, valid: Tensor, ks: tuple[int, ...] = (1, 5)
) -> dict[int, Tensor]:
    """ReaL accuracy hits (Beyer et al. 2020): per image with a non-empty label set, is any
    of its ``k`` highest-scoring classes a valid label."""
    r = Ranking(logits, valid, max(ks))
    return {k: r.real_correct(k) for k in ks}


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


# ------------------------------------------------------------------ average precision


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
    n, n_classes = valid.shape
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
                p = pos[lo:hi]
                count = n - np.searchsorted(row, p, side="left")
                tp = (hi - lo) - np.searchsorted(p, p, side="left")
                ap_sum[c0 + j] = np.sum(tp / count)
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
    count = len(all_vals) - np.searchsorted(all_vals, pos_vals, side="left")
    tp = len(pos_vals) - np.searchsorted(pos_vals, pos_vals, side="left")
    return float(np.sum(tp / count) / len(pos_vals))


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
    flat = np.flatnonzero(valid.contiguous().numpy())
    rows, cols = np.divmod(flat, n_classes)
    keep = rows_mask.numpy()[rows]
    rows, cols = rows[keep], cols[keep]
    n_pos = np.bincount(cols, minlength=n_classes)
    if len(rows) == 0:
        return torch.full((n_classes,), math.nan, dtype=torch.float64), math.nan
    l_pos = logits.view(-1)[torch.from_numpy(rows * n_classes + cols)].double()
    lse_pos = lse[torch.from_numpy(rows)]
    score_pos = torch.exp(l_pos - lse_pos).numpy()  # exp(l - lse), as ClassScores.rows
    y_pos = (lse_pos - l_pos).numpy()  # -log score, as the grid sees it
    y_max = float(y_pos.max())
    lse_abs = float(lse[rows_mask].abs().max())
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
    top_bucket = float(width - 1)
    a = torch.where(rows_mask, lse * scale, math.inf).float()  # left-out rows: u = inf

    def buckets(a_rows: Tensor, logit_rows: Tensor) -> Tensor:
        """The grid bucket of each score (flat int32): u = a - scale * l, clamped."""
        u = torch.sub(a_rows[:, None], logit_rows, alpha=scale)
        return u.clamp_(0.0, top_bucket).to(torch.int32).view(-1)

    def sampled_buckets() -> np.ndarray:
        sample = buckets(a[::_AP_SAMPLE_EVERY], logits[::_AP_SAMPLE_EVERY])
        return torch.bincount(sample, minlength=width).numpy()

    dirty = _fill_gaps(_mark(lo, hi, width), sampled_buckets, _AP_MAX_SEGMENTS)
    run = np.cumsum(dirty & ~np.concatenate(([False], dirty[:-1])))  # dirty runs so far
    n_seg = int(run[-1]) + 1  # clean segments 0..n_seg-1; id n_seg: dirty
    bins = n_seg + 1
    table = torch.from_numpy(np.where(dirty, n_seg, run).astype(np.int32))
    table = table.to(torch.int16 if bins < 2**15 else torch.int32)

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
            p = p_score[lo_p:hi_p]
            count = below[jj, p_run[lo_p:hi_p] - 1] + (
                len(scores) - np.searchsorted(scores, p, side="left")
            )
            tp = (hi_p - lo_p) - np.searchsorted(p, p, side="left")
            ap_sum[c] = np.sum(tp / count)
        return hist.sum(dim=0), exact

    parts = _in_threads([lambda c0=c0: scan(c0) for c0 in range(0, n_classes, block)])
    hist_all = torch.stack([h for h, _ in parts]).sum(dim=0)
    # every dirty score, in two sorted halves (sorted on two threads)
    halves = [[d for _, d in parts[: len(parts) // 2]], [d for _, d in parts[len(parts) // 2 :]]]
    dirty_sorted = _in_threads([lambda h=h: np.sort(np.concatenate(h)) for h in halves if h])

    # micro: the same counts over every class
    below_all = np.concatenate(([0], np.cumsum(hist_all[:n_seg].numpy())))
    pos_sorted = score_pos[by_score]
    count = below_all[run[lo[by_score]]]
    for d in dirty_sorted:
        count = count + (len(d) - np.searchsorted(d, pos_sorted, side="left"))
    tp = len(pos_sorted) - np.searchsorted(pos_sorted, pos_sorted, side="left")
    micro = float(np.sum(tp / count) / len(pos_sorted))
    has = n_pos > 0
    per_class = np.full(n_classes, np.nan)
    per_class[has] = 100.0 * ap_sum[has] / n_pos[has]
    return torch.from_numpy(per_class), 100.0 * micro


# ------------------------------------------------------------------------ scores


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

    @one_torch_thread()
    def average_precision(self, index: Tensor, valid: Tensor) -> tuple[Tensor, float]:
        """:func:`average_precision` over the rows ``index`` (e.g. the labeled images).
        Softmax scores of distinct rows are counted on the grid of
        :func:`_softmax_average_precision`; anything else is sorted."""
        if self.kind == "softmax" and self.best is not None:
            mask = torch.zeros(self.logits.shape[0], dtype=torch.bool)
            mask[index] = True
            if int(mask.sum()) == len(index):
                fast = _softmax_average_precision(self.logits, self.lse, self.best, valid, mask)
                if fast is not None:
                    return fast
        every = len(index) == self.logits.shape[0]
        logits = self.logits if every else self.logits[index]
        valid = valid if every else valid[index]
        rows, cols = valid.nonzero(as_tuple=True)
        approx = self.at(index[rows], cols)
        tau = approx.min().item() if len(approx) else math.inf
        tau -= abs(tau) * 1e-9  # ``at`` may differ from ``block`` in the last bits
        lse = self.lse[index] if self.kind == "softmax" else None

        def block(c0: int, c1: int) -> Tensor:
            z = torch.empty((c1 - c0, len(index)), dtype=torch.float64)
            if lse is None:
                return z.copy_(logits[:, c0:c1].T).sigmoid_()
            return torch.sub(logits[:, c0:c1].T, lse, out=z).exp_()

        return _average_precision_blocks(block, valid, tau)


# ------------------------------------------------------------- predicted label sets


def set_metrics(pred_size: Tensor, tp: Tensor, n_valid: Tensor, n_classes: int) -> dict[str, float]:
    """Micro precision, recall, F1, subset accuracy and Hamming loss (all percent) of
    predicted label sets, from per-image counts (labeled images only): predicted set
    size, true positives (predicted and valid) and valid set size."""
    exact = (tp == pred_size) & (tp == n_valid)
    return set_metrics_from_sums(
        int(tp.sum()),
        int((pred_size - tp).sum()),
        int((n_valid - tp).sum()),
        int(exact.sum()),
        len(n_valid),
        len(n_valid) * n_classes,
    )


def set_metrics_from_sums(
    tp: int, fp: int, fn: int, exact: int, images: int, cells: int
) -> dict[str, float]:
    """:func:`set_metrics` from its integer sums (``exact``: images whose predicted set
    equals the valid set; ``cells``: images x classes)."""

    def pct(num: float, den: float) -> float:
        return 100.0 * num / den if den > 0 else float("nan")

    return {
        "precision": pct(tp, tp + fp),
        "recall": pct(tp, tp + fn),
        "f1": pct(2 * tp, 2 * tp + fp + fn),
        "subset_accuracy": pct(exact, images),
        "hamming_loss": pct(fp + fn, cells),
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


# ---------------------------------------------------------------- multi-label head


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
    """Every multi-label metric of the project for one dataset (see the module docstring
    for conventions; images with an empty label set only count in ``num_*``).

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
    strict_count = torch.zeros(len(LABEL_GROUPS), dtype=torch.long)
    group_count = torch.zeros(len(LABEL_GROUPS), dtype=torch.long)
    for gi, name in enumerate(LABEL_GROUPS):
        sel = group == gi
        group_count[gi] = int(sel.sum())
        strict_count[gi] = int(strict[sel].sum())
        out[f"num_images@labels={name}"] = int(group_count[gi])
        out[f"top1@labels={name}"] = accuracy(top1[sel])
        out[f"real_top1@labels={name}"] = accuracy(real1[sel])
        out[f"vartopk_strict@labels={name}"] = accuracy(strict[sel])
    out["asma"] = asma(strict_count, group_count, min_subgroup_size)

    cs = ClassScores(logits, scores, summary=p)
    index = lab.nonzero().squeeze(1)
    per_class, micro = cs.average_precision(index, valid)
    out["map_macro"] = mean_average_precision(per_class)
    out["map_micro"] = micro
    size, tp = predicted_set_counts(ranking, cs, valid, mode, k, threshold, mass)
    out.update(set_metrics(size, tp, ranking.n_valid[lab], n_classes))

    confidence = cs.top1()[lab]
    error = ~top1[lab]
    for t in confidences:
        sel = error & (confidence >= t)
        out[f"confident_errors_valid@p>={t:g}"] = accuracy(real1[lab][sel])
    out["ece_multilabel"] = expected_calibration_error(confidence, real1[lab], n_bins)
    return out
