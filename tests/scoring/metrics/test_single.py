"""Single-label metrics (scoring/metrics/single.py) against the independent NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest
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


# -- ECE's bins against torchmetrics' MulticlassCalibrationError --------------------------


def torchmetrics_ece(probs: torch.Tensor, target: torch.Tensor, n_bins: int) -> float:
    from torchmetrics.functional.classification import multiclass_calibration_error

    c = probs.shape[1]
    return 100.0 * float(multiclass_calibration_error(probs, target, c, n_bins=n_bins))


def ours_from_probs(probs: torch.Tensor, target: torch.Tensor, n_bins: int) -> float:
    confidence, top1 = probs.max(dim=1)
    return expected_calibration_error(confidence, top1 == target, n_bins)


@SETTINGS
@given(
    st.integers(1, 80),
    st.integers(0, 2**31 - 1),
    st.sampled_from([2, 4, 8, 10, 15, 16]),
    st.floats(0.0, 1.0),
)
def test_ece_bins_are_torchmetrics_on_bin_edges_and_at_one(n, seed, n_bins, edge_share):
    """Confidences on the bin edges k/n (exact in float32 for n = 2, 4, 8, 16), at 1.0 (a
    saturated softmax) and anywhere between: torchmetrics' numbers, to float32 rounding.
    Right-closed bins (Guo et al.) differ by up to tens of points here."""
    rng = np.random.default_rng(seed)
    if n_bins & (n_bins - 1):  # k/10, k/15 are not float32 numbers: torchmetrics' edges are
        edge_share = 0.0  # their float32 roundings (docstring of expected_calibration_error)
    c = 4
    edge = rng.integers(1, n_bins + 1, n) / n_bins  # k/n, 1.0 included
    anywhere = 0.25 + 0.75 * rng.random(n)  # at least 1/c: a valid top probability
    top = np.where(rng.random(n) < edge_share, edge, anywhere).clip(1 / c, 1.0)
    probs = np.empty((n, c), dtype=np.float32)
    probs[:, 0] = top
    probs[:, 1:] = ((1.0 - top) / (c - 1))[:, None]
    top = torch.from_numpy(probs[:, 0]).double()  # the float32 value, both sides
    probs = torch.from_numpy(probs)
    target = torch.from_numpy(np.where(rng.random(n) < 0.6, 0, rng.integers(1, c, n)))
    want = torchmetrics_ece(probs, target, n_bins)
    got = expected_calibration_error(top, target == 0, n_bins)
    assert abs(got - want) < 1e-4


def test_ece_edge_cases_against_torchmetrics() -> None:
    """Confidences of exactly 0.5 and 1.0 with 2 bins; a softmax saturated at 1.0 (a margin of 100:
    1.0 in float32 and float64); tied logits (confidence 1/C, top-1 the lowest class): the
    single-label head's ece is torchmetrics' on the softmax of the same logits."""
    edge = torch.tensor([[0.5, 0.5], [1.0, 0.0], [0.75, 0.25]])
    target = torch.tensor([0, 0, 1])
    assert ours_from_probs(edge, target, 2) == pytest.approx(torchmetrics_ece(edge, target, 2))
    assert ours_from_probs(edge, target, 2) == pytest.approx(100 / 12)  # right-closed: 125 / 3
    saturated = torch.zeros(6, 10)
    saturated[:, 3] = 100.0
    saturated[4:, 3] = 2.0  # two images of confidence < 1
    tied = torch.zeros(3, 10)
    for logits, target in (
        (saturated, torch.tensor([3, 3, 1, 3, 3, 0])),
        (tied, torch.tensor([0, 1, 2])),
    ):
        got = single_label_metrics(logits, target, 15)["ece"]
        want = torchmetrics_ece(logits.softmax(dim=1), target, 15)
        assert got == pytest.approx(want, abs=1e-4)
