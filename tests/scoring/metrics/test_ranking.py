"""Rankings (scoring/metrics/ranking.py): ties broken by the lower class index, the shared row
summary, label counts."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagenet_multilabel.scoring.metrics.ranking import (
    Ranking,
    RowSummary,
    label_counts,
    ranked_topk,
)
from tests.scoring.metrics.np_reference import ranking as ref_ranking
from tests.scoring.metrics.np_reference import softmax as ref_softmax

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_ranked_topk_breaks_ties_by_index():
    x = torch.tensor([[1.0, 3, 3, 1, 3], [0.0, 0, 0, 0, 0], [5.0, 4, 3, 2, 1]])
    assert ranked_topk(x, 3).tolist() == [[1, 2, 4], [0, 1, 2], [0, 1, 2]]


@SETTINGS
@given(st.integers(1, 20), st.integers(1, 12), st.integers(0, 2**31 - 1), st.integers(1, 13))
def test_ranked_topk_matches_stable_argsort(n, c, seed, k):
    x = np.random.default_rng(seed).integers(-2, 3, (n, c)).astype(np.float32)
    got = ranked_topk(torch.from_numpy(x), k).numpy()
    assert (got == ref_ranking(x)[:, : min(k, c)]).all()


@SETTINGS
@given(st.integers(1, 300), st.integers(1, 12), st.integers(0, 2**31 - 1), st.integers(0, 14))
def test_row_summary_matches_reference(n, c, seed, k):
    # chunks of 7 rows: several chunks, shared out between threads
    x = np.random.default_rng(seed).integers(-2, 3, (n, c)).astype(np.float32)
    p = RowSummary(torch.from_numpy(x), k, chunk_rows=7)
    assert (p.top.numpy() == ref_ranking(x)[:, : min(k, c)]).all()
    assert (p.ranked(c).numpy() == ref_ranking(x)).all()  # ranks further on demand
    assert np.allclose(1 / p.s.numpy(), ref_softmax(x).max(axis=1), rtol=1e-12, atol=0)
    softmax = np.exp(x.astype(np.float64) - p.lse.numpy()[:, None])
    assert np.allclose(softmax, ref_softmax(x), rtol=1e-12, atol=1e-300)


def test_label_counts_and_ranking_views():
    valid = torch.tensor([[True, False, True], [False, False, False], [True, True, True]])
    assert label_counts(valid).tolist() == [2, 0, 3]
    assert label_counts(valid.to(torch.uint8)).tolist() == [2, 0, 3]
    logits = torch.tensor([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0], [1.0, 1.0, 1.0]])
    r = Ranking(logits, valid, k=1)
    # image 0 ranks 0, 1, 2 with labels {0, 2}: 1 of its 2 labels among its 2 best
    assert r.found.tolist() == [1, 0, 3] and r.group().tolist() == [1, -1, 2]
    assert r.real_correct(1).tolist() == [True, True]
    assert r.vartopk_strict().tolist() == [False, True]
    assert r.vartopk_partial().tolist() == [0.5, 1.0]
