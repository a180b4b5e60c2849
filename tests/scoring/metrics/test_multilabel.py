"""Multi-label metrics (scoring/metrics/multilabel.py): hand-computed cases, edge cases, and
property tests against the independent NumPy reference in np_reference.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagenet_multilabel.scoring.metrics.multilabel import PRED_MODES, multilabel_metrics
from tests.scoring.metrics.np_reference import close
from tests.scoring.metrics.np_reference import multilabel as ref_multilabel


def assert_same(got: dict[str, float], want: dict[str, float]) -> None:
    assert list(got) == list(want)
    bad = {k: (got[k], want[k]) for k in want if not close(got[k], want[k])}
    assert not bad


def multihot(sets: list[list[int]], c: int) -> torch.Tensor:
    valid = torch.zeros(len(sets), c, dtype=torch.bool)
    for i, s in enumerate(sets):
        valid[i, s] = True
    return valid


# 4 images, 4 classes. Rankings (best first): img0 0,1,2,3; img1 1,2,3,0; img2 2,3,0,1;
# img3 3,2,1,0. Valid sets: {0}, {1,2}, {0,1}, {} (unlabeled). Original labels 0, 2, 0, 3.
HAND_LOGITS = torch.tensor([[4.0, 3, 2, 1], [1.0, 4, 3, 2], [2.0, 1, 4, 3], [1.0, 2, 3, 4]])
HAND_TARGET = torch.tensor([0, 2, 0, 3])
HAND_VALID = multihot([[0], [1, 2], [0, 1], []], 4)


def test_hand_ranking_metrics():
    out = multilabel_metrics(HAND_LOGITS, HAND_TARGET, HAND_VALID)
    # counts: 4 images, 3 with a label set
    assert (out["num_images"], out["num_labeled"], out["num_unlabeled"]) == (4, 3, 1)
    # real top-1: img0 0 in {0} yes; img1 1 in {1,2} yes; img2 2 in {0,1} no -> 2/3
    assert close(out["real_top1"], 200 / 3)
    # real top-5 (k=5 > 4 classes: all classes) -> every labeled image: 100
    assert out["real_top5"] == 100.0
    # vartopk: img0 k=1 {0}=={0} yes; img1 k=2 {1,2}=={1,2} yes; img2 k=2 {2,3} vs {0,1} no
    assert close(out["vartopk_strict"], 200 / 3)
    # partial: (1/1 + 2/2 + 0/2) / 3
    assert close(out["vartopk_partial"], 200 / 3)
    # subgroup 1 label: img0: top1 0==0, real yes, strict yes
    assert out["num_images@labels=1"] == 1
    assert out["top1@labels=1"] == out["real_top1@labels=1"] == 100.0
    assert out["vartopk_strict@labels=1"] == 100.0
    # subgroup 2 labels: img1 (top1 1 != 2, real yes, strict yes), img2 (all no)
    assert out["num_images@labels=2"] == 2
    assert out["top1@labels=2"] == 0.0
    assert out["real_top1@labels=2"] == out["vartopk_strict@labels=2"] == 50.0
    for g in ("3", "4+"):
        assert out[f"num_images@labels={g}"] == 0
        assert math.isnan(out[f"vartopk_strict@labels={g}"])
    # ASMA: mean over the non-empty subgroups 1 and 2 of strict accuracy: (100 + 50) / 2
    assert out["asma"] == 75.0
    # predicted sets (vartopk): sizes 1,2,2; true positives 1,2,0; valid sizes 1,2,2
    # TP=3 FP=2 FN=2 -> precision = recall = f1 = 60; subset 2/3; hamming 4/(3*4)
    assert close(out["precision"], 60.0) and close(out["recall"], 60.0)
    assert close(out["f1"], 60.0)
    assert close(out["subset_accuracy"], 200 / 3)
    assert close(out["hamming_loss"], 100 * 4 / 12)


def test_asma_min_subgroup_size():
    # subgroup 1 has 1 image, subgroup 2 has 2: with min size 2 only subgroup 2 (50) counts
    out = multilabel_metrics(HAND_LOGITS, HAND_TARGET, HAND_VALID, min_subgroup_size=2)
    assert out["asma"] == 50.0
    out = multilabel_metrics(HAND_LOGITS, HAND_TARGET, HAND_VALID, min_subgroup_size=3)
    assert math.isnan(out["asma"])


def test_hand_modes():
    # topk k=1: predicted {0},{1},{2}: TP 1+1+0=2, FP 0+0+1=1, FN 0+1+2=3
    out = multilabel_metrics(HAND_LOGITS, HAND_TARGET, HAND_VALID, mode="topk", k=1)
    assert close(out["precision"], 200 / 3) and close(out["recall"], 40.0)
    assert close(out["f1"], 100 * 4 / (4 + 1 + 3))
    # subset: only img0 ({0}=={0}) -> 1/3; hamming (1+3)/12
    assert close(out["subset_accuracy"], 100 / 3) and close(out["hamming_loss"], 100 / 3)


def test_hand_uncertainty_view():
    # A: [5,0] top1 0, original 1 (error), valid {0,1}: confident error, top1 valid
    # B: [0,5] top1 1, original 0 (error), valid {0}: confident error, top1 not valid
    # C: [0.1,0] top1 0, original 1 (error), valid {0}: p=0.525, top1 valid
    logits = torch.tensor([[5.0, 0.0], [0.0, 5.0], [0.1, 0.0]])
    valid = multihot([[0, 1], [0], [0]], 2)
    out = multilabel_metrics(logits, torch.tensor([1, 0, 1]), valid)
    # p >= 0.5: A, B, C -> valid A, C -> 2/3; p >= 0.8: A, B -> 1/2
    assert close(out["confident_errors_valid@p>=0.5"], 200 / 3)
    assert close(out["confident_errors_valid@p>=0.8"], 50.0)
    # ECE (15 bins): A, B in bin 15 (p=.9933, hits 1 of 2); C in bin 8 (p=.525, hit)
    pa = 1 / (1 + math.exp(-5.0))
    pc = 1 / (1 + math.exp(-0.1))
    want = 100 * (2 / 3 * abs(0.5 - pa) + 1 / 3 * abs(1 - pc))
    assert close(out["ece_multilabel"], want)


def test_all_unlabeled_and_single_image():
    logits = torch.randn(3, 5)
    out = multilabel_metrics(logits, torch.tensor([0, 1, 2]), torch.zeros(3, 5, dtype=torch.bool))
    assert out["num_labeled"] == 0 and out["num_unlabeled"] == 3
    for key in ("real_top1", "vartopk_strict", "asma", "map_macro", "map_micro", "f1"):
        assert math.isnan(out[key])
    one = multilabel_metrics(torch.tensor([[0.0, 2.0, 1.0]]), torch.tensor([1]), multihot([[1]], 3))
    assert one["real_top1"] == one["vartopk_strict"] == one["asma"] == 100.0
    assert one["map_macro"] == one["map_micro"] == 100.0


def test_more_than_five_labels():
    # 7 valid labels 0..6 out of 9, ranked 0..8 best first: top-7 is exactly the set
    logits = torch.arange(9, 0, -1).float()[None]
    out = multilabel_metrics(logits, torch.tensor([0]), multihot([list(range(7))], 9))
    assert out["vartopk_strict"] == 100.0 and out["num_images@labels=4+"] == 1
    # swap class 6 with class 7: 6 of 7 found
    logits[0, [6, 7]] = logits[0, [7, 6]]
    out = multilabel_metrics(logits, torch.tensor([0]), multihot([list(range(7))], 9))
    assert out["vartopk_strict"] == 0.0 and close(out["vartopk_partial"], 600 / 7)


def test_bad_mode_is_rejected():
    with pytest.raises(ValueError, match="mode"):
        multilabel_metrics(HAND_LOGITS, HAND_TARGET, HAND_VALID, mode="nope")


@st.composite
def batches(draw, max_n: int = 12, max_c: int = 9, softmax: bool = False):
    """Integer-valued logits (many ties), 0 to 7 valid labels per image.

    ``softmax``: logits for comparing softmax scores with the reference. Two rows' softmax
    scores can tie exactly, in exact arithmetic, only when one row is a shifted
    permutation of the other (e.g. ``[0, 1]`` and ``[2, 3]``), or both are constant (every
    score ``1/C``, also on a calibration bin edge or a threshold). Float64 may then split
    the tie on one side and not the other (the package and the reference round
    differently), which changes an AP count or a bin. So each row is scaled by its own
    irrational factor and constant rows get one entry raised: ties within a row stay,
    and so do identical rows (duplicated half the time), which both sides score alike.
    """
    n = draw(st.integers(1, max_n))
    c = draw(st.integers(2, max_c))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    logits = rng.integers(-3, 4, (n, c)).astype(np.float32)  # integer-valued: many ties
    if softmax:
        logits[(logits == logits[:, :1]).all(axis=1), 0] += 1
        logits *= (1 + 0.1 * np.sqrt(2.0 + np.arange(n, dtype=np.float32)))[:, None]
        if draw(st.booleans()):
            logits[n // 2 :] = logits[: n - n // 2]
    valid = np.zeros((n, c), dtype=bool)
    for i in range(n):
        size = int(rng.integers(0, min(7, c) + 1))
        valid[i, rng.choice(c, size, replace=False)] = True
    target = rng.integers(0, c, n)
    return logits, target, valid


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(
    batches(softmax=True),
    st.sampled_from(PRED_MODES),
    st.integers(1, 4),
    st.sampled_from([1, 2, 3]),
)
def test_multilabel_matches_reference(batch, mode, k, min_size):
    logits, target, valid = batch
    got = multilabel_metrics(
        torch.from_numpy(logits),
        torch.from_numpy(target),
        torch.from_numpy(valid),
        mode=mode,
        k=k,
        threshold=0.3,
        mass=0.6,
        min_subgroup_size=min_size,
    )
    want = ref_multilabel(
        logits,
        target,
        valid,
        mode=mode,
        k=k,
        threshold=0.3,
        mass=0.6,
        min_subgroup_size=min_size,
    )
    assert_same(got, want)


@SETTINGS
@given(batches())
def test_sigmoid_scores_match_reference(batch):
    logits, target, valid = batch
    got = multilabel_metrics(
        torch.from_numpy(logits),
        torch.from_numpy(target),
        torch.from_numpy(valid),
        mode="threshold",
        scores="sigmoid",
    )
    want = ref_multilabel(logits, target, valid, "sigmoid", mode="threshold")
    assert_same(got, want)
