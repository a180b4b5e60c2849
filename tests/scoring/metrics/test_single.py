"""Single-label metrics (scoring/metrics/single.py) against the independent NumPy reference."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagenet_multilabel.scoring.metrics.single import (
    expected_calibration_error,
    single_label_metrics,
)
from tests.scoring.metrics.np_reference import close, ece
from tests.scoring.metrics.np_reference import single_label as ref_single_label

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(
    st.integers(1, 60),
    st.integers(2, 20),
    st.integers(0, 2**31 - 1),
    st.sampled_from([0.3, 3.0, 10.0]),
    st.sampled_from([5, 15]),
)
def test_single_label_metrics_match_reference(n, c, seed, spread, n_bins):
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal((n, c)) * spread).astype(np.float32)
    target = rng.integers(0, c, n)
    if c > 3:  # the target among the best: top-1, top-3 and top-5 hits on both sides
        target[::3] = np.argmax(logits[::3], axis=1)
        target[1::3] = np.argsort(-logits[1::3], axis=1, kind="stable")[:, 2]  # the third
    got = single_label_metrics(torch.from_numpy(logits), torch.from_numpy(target), n_bins)
    want = ref_single_label(logits, target, n_bins)
    assert list(got) == list(want)
    assert {k for k in want if not close(got[k], want[k])} == set()


def test_single_label_ties_rank_the_lower_index_first():
    logits = torch.tensor([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0]])
    out = single_label_metrics(logits, torch.tensor([0, 2]))
    assert out["top1"] == 50.0  # row 0: class 0 wins the tie; row 1: class 1 does
    want = ref_single_label(logits.numpy(), np.array([0, 2]))
    assert {k for k in want if not close(out[k], want[k])} == set()


@SETTINGS
@given(st.integers(0, 200), st.integers(0, 2**31 - 1), st.sampled_from([1, 10, 15]))
def test_ece_matches_reference(n, seed, n_bins):
    rng = np.random.default_rng(seed)
    conf = rng.random(n)
    correct = rng.random(n) < conf
    got = expected_calibration_error(torch.from_numpy(conf), torch.from_numpy(correct), n_bins)
    want = ece(conf, correct.astype(float), n_bins)
    assert close(got, want)
