"""Average precision (scoring/metrics/average_precision.py): hand-computed ties and the NumPy
reference of scikit-learn's definition, on given scores; the softmax path of the heads
against the generic one (the grid itself: test_ap_grid.py)."""

from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagenet_multilabel.scoring.metrics.average_precision import (
    average_precision,
    mean_average_precision,
    scores_average_precision,
)
from imagenet_multilabel.scoring.metrics.scores import ClassScores
from tests.scoring.metrics.np_reference import average_precision as ref_ap
from tests.scoring.metrics.np_reference import close

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_hand_average_precision_with_ties():
    scores = torch.tensor(
        [[0.9, 0.2, 0.3, 0.05], [0.1, 0.8, 0.6, 0.05], [0.5, 0.8, 0.7, 0.4]], dtype=torch.float64
    )
    valid = torch.tensor([[1, 0, 0, 0], [0, 1, 1, 0], [1, 0, 0, 0]], dtype=torch.bool)
    per_class, micro = average_precision(scores, valid)
    # class 0: positives 0.9, 0.5 rank 1, 2 -> precisions 1, 1 -> AP 1
    # class 1: positive 0.8 tied with a negative 0.8 -> one threshold: 1 of 2 -> AP 0.5
    # class 2: 0.7 (neg) above the positive 0.6 -> precision 1/2 -> AP 0.5
    # class 3: no positive -> NaN, left out of the mean
    assert per_class[:3].tolist() == [100.0, 50.0, 50.0] and math.isnan(per_class[3])
    assert close(mean_average_precision(per_class), 200 / 3)
    # micro: .9p .8p .8n .7 .6p .5p .4 ... -> precisions 1/1, 2/3 (tie group), 3/5, 4/6
    assert close(micro, 100 * (1 + 2 / 3 + 3 / 5 + 4 / 6) / 4)


@SETTINGS
@given(st.integers(1, 30), st.integers(1, 8), st.integers(0, 2**31 - 1), st.booleans())
def test_average_precision_matches_reference(n, c, seed, integer_scores):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 4, (n, c)).astype(float) if integer_scores else rng.random((n, c))
    valid = rng.random((n, c)) < rng.random()
    per_class, micro = average_precision(torch.from_numpy(scores), torch.from_numpy(valid))
    want = [100 * ref_ap(valid[:, j], scores[:, j]) for j in range(c)]
    assert all(close(a, b) for a, b in zip(per_class.tolist(), want, strict=True))
    want_micro = 100 * ref_ap(valid.ravel(), scores.ravel()) if valid.any() else float("nan")
    assert close(micro, want_micro)


def test_softmax_path_equals_generic_average_precision():
    # the head's blocked softmax AP equals AP on the materialised softmax matrix
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(300, 70, generator=g)
    valid = torch.rand(300, 70, generator=g) < 0.05
    valid[:5] = False
    cs = ClassScores(logits)
    index = valid.any(1).nonzero().squeeze(1)
    got_c, got_m = scores_average_precision(cs, index, valid)
    want_c, want_m = average_precision(cs.rows(index), valid[index])
    assert torch.equal(got_c.isnan(), want_c.isnan())
    assert torch.allclose(got_c.nan_to_num(), want_c.nan_to_num(), rtol=0, atol=1e-12)
    assert close(got_m, want_m, 1e-12)


def test_average_precision_leaves_its_input_alone():
    # a one-class float64 matrix is its own transposed copy: it must not be sorted in place
    scores = torch.tensor([[0.2], [0.9], [0.5]], dtype=torch.float64)
    before = scores.clone()
    average_precision(scores, torch.tensor([[True], [False], [False]]))
    assert torch.equal(scores, before)
