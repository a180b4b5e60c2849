"""Average precision of softmax scores by grid counts
(average_precision._softmax_average_precision): bitwise equal to the sorting path and equal
to scikit-learn's definition (NumPy reference, on the scores the sorting path sorts; the
softmax itself is checked against the reference's own in test_multilabel.py), with ties,
tiny grids that make most buckets dirty, excluded rows, and the fallbacks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagenet_multilabel.scoring.metrics import average_precision as AP
from imagenet_multilabel.scoring.metrics.multilabel import multilabel_metrics
from imagenet_multilabel.scoring.metrics.ranking import RowSummary, ranked_topk
from imagenet_multilabel.scoring.metrics.scores import ClassScores
from imagenet_multilabel.scoring.metrics.single import single_label_metrics
from tests.scoring.metrics.np_reference import average_precision as ref_ap
from tests.scoring.metrics.np_reference import close

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def grid_ap(logits: torch.Tensor, valid: torch.Tensor, index: torch.Tensor):
    """The grid path, asserting that it did not fall back to sorting."""
    cs = ClassScores(logits)
    mask = torch.zeros(len(logits), dtype=torch.bool)
    mask[index] = True
    got = AP._softmax_average_precision(logits, cs.lse, cs.best, valid, mask)
    assert got is not None
    return got


def sorted_ap(logits: torch.Tensor, valid: torch.Tensor, index: torch.Tensor):
    """The sorting path on the materialised softmax scores of the rows ``index``."""
    return AP.average_precision(ClassScores(logits).rows(index), valid[index])


def assert_bitwise(got, want) -> None:
    assert torch.equal(got[0].isnan(), want[0].isnan())
    assert torch.equal(got[0].nan_to_num(), want[0].nan_to_num())
    assert got[1] == want[1] or (math.isnan(got[1]) and math.isnan(want[1]))


@st.composite
def problems(draw):
    n = draw(st.integers(1, 40))
    c = draw(st.integers(1, 9))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    if draw(st.booleans()):
        logits = rng.integers(-3, 4, (n, c)).astype(np.float32)  # many exact ties
    else:
        logits = (rng.standard_normal((n, c)) * draw(st.sampled_from([0.1, 3.0, 20.0]))).astype(
            np.float32
        )
    if draw(st.booleans()):  # duplicated rows: equal scores across images
        logits[n // 2 :] = logits[: n - n // 2]
    valid = rng.random((n, c)) < draw(st.sampled_from([0.1, 0.3, 0.8]))
    keep = rng.random(n) < draw(st.sampled_from([0.5, 1.0]))
    valid[~keep] = False  # rows left out carry no positive, as for unlabeled images
    # (fine buckets, classes per block, clean segments kept): tiny grids make most buckets
    # dirty; one class per block; few segments fill most gaps between dirty runs
    grid = draw(
        st.sampled_from(
            [(1 << 20, 16, 4096), (64, 1, 4096), (4, 3, 2), (3, 16, 1), (1 << 12, 2, 3)]
        )
    )
    threads = draw(st.sampled_from([1, 2]))  # 2: the blocks run on two Python threads
    return logits, valid, keep, grid, threads


@SETTINGS
@given(problems())
def test_grid_ap_matches_reference_and_sorting(problem):
    logits, valid, keep, (fine, block_cols, max_segments), threads = problem
    t_logits, t_valid = torch.from_numpy(logits), torch.from_numpy(valid)
    index = torch.from_numpy(np.flatnonzero(keep))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(AP, "_AP_FINE_BUCKETS", fine)
            mp.setattr(AP, "_AP_BLOCK_COLS", block_cols)
            mp.setattr(AP, "_AP_MAX_SEGMENTS", max_segments)
            got = grid_ap(t_logits, t_valid, index)
        assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)
    assert_bitwise(got, sorted_ap(t_logits, t_valid, index))
    scores = ClassScores(t_logits).rows(index).numpy()
    v = valid[keep]
    want = [100 * ref_ap(v[:, j], scores[:, j]) for j in range(v.shape[1])]
    assert all(close(a, b) for a, b in zip(got[0].tolist(), want, strict=True))
    want_micro = 100 * ref_ap(v.ravel(), scores.ravel()) if v.any() else float("nan")
    assert close(got[1], want_micro)


def test_grid_ap_hand_case_with_ties():
    # class 0: positive scores tie with a negative of another row (same logits, same lse)
    logits = torch.tensor([[2.0, 0.0, 1.0], [2.0, 0.0, 1.0], [0.0, 3.0, 1.0]])
    valid = torch.tensor([[True, False, False], [False, False, True], [False, True, False]])
    got = grid_ap(logits, valid, torch.arange(3))
    # class 0: scores p, p (tied, one positive), q < p -> precision 1/2 -> AP 50
    # class 1: the positive is the only top score -> 100; class 2: rows 0, 1 tie -> 50
    assert got[0].tolist() == [50.0, 100.0, 50.0]
    assert_bitwise(got, sorted_ap(logits, valid, torch.arange(3)))


def test_grid_ap_excluded_rows_do_not_count_whatever_they_hold():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(50, 6, generator=g)
    valid = torch.rand(50, 6, generator=g) < 0.3
    valid[::3] = False
    logits[::3] = 5.0  # excluded rows would outrank everything
    logits[3, 2] = -math.inf  # -inf logits: score 0, in an excluded and an included row
    logits[4, 1] = -math.inf
    valid[4] = torch.tensor([True, False, False, True, False, False])  # -inf: a negative
    index = valid.any(1).nonzero().squeeze(1)
    assert_bitwise(grid_ap(logits, valid, index), sorted_ap(logits, valid, index))


def test_grid_ap_no_positive():
    logits = torch.randn(5, 3)
    got = grid_ap(logits, torch.zeros(5, 3, dtype=torch.bool), torch.arange(5))
    assert got[0].isnan().all() and math.isnan(got[1])


@pytest.mark.parametrize("case", ["nonfinite", "tiny_scores"])
def test_grid_ap_falls_back_to_sorting(case):
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(30, 5, generator=g)
    valid = torch.rand(30, 5, generator=g) < 0.4
    if case == "nonfinite":
        valid[0] = False
        logits[0, 0] = math.inf  # in an excluded row: the sort path ignores it
    else:
        logits[1, 0] = 800.0  # every other score of row 1 is below e^-700
        valid[1, 1] = True
    cs = ClassScores(logits)
    mask = valid.any(1)
    assert AP._softmax_average_precision(logits, cs.lse, cs.best, valid, mask) is None
    index = mask.nonzero().squeeze(1)
    assert_bitwise(AP.scores_average_precision(cs, index, valid), sorted_ap(logits, valid, index))


def test_row_summary_shared_by_heads_equals_separate_calls():
    from imagenet_multilabel.scoring.heads import MultiLabelHead, SingleLabelHead
    from imagenet_multilabel.scoring.scorer import HeadSpec, Scorer

    g = torch.Generator().manual_seed(5)
    logits = torch.randn(200, 12, generator=g)
    target = torch.randint(0, 12, (200,), generator=g)
    valid = torch.rand(200, 12, generator=g) < 0.15  # up to ~7 labels: ranks beyond 5
    heads = {"single": SingleLabelHead(), "multilabel": MultiLabelHead()}
    shared = Scorer({n: HeadSpec(h) for n, h in heads.items()}).score("d", logits, target, valid)
    alone = {
        "num_images": 200,
        **single_label_metrics(logits, target),
        **multilabel_metrics(logits, target, valid),
    }
    assert list(shared) == list(alone)
    assert all(
        shared[k] == alone[k] or (math.isnan(shared[k]) and math.isnan(alone[k])) for k in alone
    )
    p = RowSummary(logits, heads["multilabel"].ranks(valid))
    assert p.top.shape[1] == max(5, int(valid.sum(1).max()))
    assert torch.equal(p.ranked(12), ranked_topk(logits, 12))  # ranks further on demand


def test_fill_gaps_keeps_the_heaviest_gaps_and_the_last():
    # buckets: D . . D . D . . . D .   (D dirty); gaps [1,3), [4,5), [6,9), last [10,11)
    dirty = np.array([1, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0], dtype=bool)
    weight = np.array([0, 5, 5, 0, 20, 0, 1, 1, 1, 0, 0])
    got = AP._fill_gaps(dirty, lambda: weight, keep=2)  # the heaviest gap, plus the last
    want = np.array([1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0], dtype=bool)
    assert (got == want).all()
    assert (AP._fill_gaps(dirty, lambda: weight, keep=4) == dirty).all()  # few enough gaps
    assert (AP._fill_gaps(dirty, lambda: weight, keep=1) == ~np.eye(11, dtype=bool)[10]).all()
