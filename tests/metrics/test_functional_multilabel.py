"""Multi-label metrics of the functional core: hand-computed cases, edge cases, and
property tests against the NumPy reference in np_reference.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagenet_multilabel.metrics import functional as F
from tests.metrics.np_reference import average_precision as ref_ap
from tests.metrics.np_reference import multilabel as ref_multilabel
from tests.metrics.np_reference import ranking as ref_ranking


def close(a: float, b: float, rel: float = 1e-9) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)


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
    out = F.multilabel_metrics(HAND_LOGITS, HAND_TARGET, HAND_VALID)
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
    out = F.multilabel_metrics(HAND_LOGITS, HAND_TARGET, HAND_VALID, min_subgroup_size=2)
    assert out["asma"] == 50.0
    out = F.multilabel_metrics(HAND_LOGITS, HAND_TARGET, HAND_VALID, min_subgroup_size=3)
    assert math.isnan(out["asma"])


def test_hand_modes():
    # topk k=1: predicted {0},{1},{2}: TP 1+1+0=2, FP 0+0+1=1, FN 0+1+2=3
    out = F.multilabel_metrics(HAND_LOGITS, HAND_TARGET, HAND_VALID, mode="topk", k=1)
    assert close(out["precision"], 200 / 3) and close(out["recall"], 40.0)
    assert close(out["f1"], 100 * 4 / (4 + 1 + 3))
    # subset: only img0 ({0}=={0}) -> 1/3; hamming (1+3)/12
    assert close(out["subset_accuracy"], 100 / 3) and close(out["hamming_loss"], 100 / 3)


def test_hand_average_precision_with_ties():
    scores = torch.tensor(
        [[0.9, 0.2, 0.3, 0.05], [0.1, 0.8, 0.6, 0.05], [0.5, 0.8, 0.7, 0.4]], dtype=torch.float64
    )
    valid = multihot([[0], [1, 2], [0]], 4)
    per_class, micro = F.average_precision(scores, valid)
    # class 0: positives 0.9, 0.5 rank 1, 2 -> precisions 1, 1 -> AP 1
    # class 1: positive 0.8 tied with a negative 0.8 -> one threshold: 1 of 2 -> AP 0.5
    # class 2: 0.7 (neg) above the positive 0.6 -> precision 1/2 -> AP 0.5
    # class 3: no positive -> NaN, left out of the mean
    assert per_class[:3].tolist() == [100.0, 50.0, 50.0] and math.isnan(per_class[3])
    assert close(F.mean_average_precision(per_class), 200 / 3)
    # micro: .9p .8p .8n .7 .6p .5p .4 ... -> precisions 1/1, 2/3 (tie group), 3/5, 4/6
    assert close(micro, 100 * (1 + 2 / 3 + 3 / 5 + 4 / 6) / 4)


def test_hand_uncertainty_view():
    # A: [5,0] top1 0, original 1 (error), valid {0,1}: confident error, top1 valid
    # B: [0,5] top1 1, original 0 (error), valid {0}: confident error, top1 not valid
    # C: [0.1,0] top1 0, original 1 (error), valid {0}: p=0.525, top1 valid
    logits = torch.tensor([[5.0, 0.0], [0.0, 5.0], [0.1, 0.0]])
    valid = multihot([[0, 1], [0], [0]], 2)
    out = F.multilabel_metrics(logits, torch.tensor([1, 0, 1]), valid)
    # p >= 0.5: A, B, C -> valid A, C -> 2/3; p >= 0.8: A, B -> 1/2
    assert close(out["confident_errors_valid@p>=0.5"], 200 / 3)
    assert close(out["confident_errors_valid@p>=0.8"], 50.0)
    # ECE (15 bins): A, B in bin 15 (p=.9933, hits 1 of 2); C in bin 8 (p=.525, hit)
    pa = 1 / (1 + math.exp(-5.0))
    pc = 1 / (1 + math.exp(-0.1))
    want = 100 * (2 / 3 * abs(0.5 - pa) + 1 / 3 * abs(1 - pc))
    assert close(out["ece_multilabel"], want)


def test_ranked_topk_breaks_ties_by_index():
    x = torch.tensor([[1.0, 3, 3, 1, 3], [0.0, 0, 0, 0, 0], [5.0, 4, 3, 2, 1]])
    assert F.ranked_topk(x, 3).tolist() == [[1, 2, 4], [0, 1, 2], [0, 1, 2]]
    assert F.topk_correct(x, torch.tensor([4, 3, 0]), (1, 3))[3].tolist() == [True, False, True]


def test_all_unlabeled_and_single_image():
    logits = torch.randn(3, 5)
    out = F.multilabel_metrics(logits, torch.tensor([0, 1, 2]), torch.zeros(3, 5, dtype=torch.bool))
    assert out["num_labeled"] == 0 and out["num_unlabeled"] == 3
    for key in ("real_top1", "vartopk_strict", "asma", "map_macro", "map_micro", "f1"):
        assert math.isnan(out[key])
    one = F.multilabel_metrics(
        torch.tensor([[0.0, 2.0, 1.0]]), torch.tensor([1]), multihot([[1]], 3)
    )
    assert one["real_top1"] == one["vartopk_strict"] == one["asma"] == 100.0
    assert one["map_macro"] == one["map_micro"] == 100.0


def test_more_than_five_labels():
    # 7 valid labels 0..6 out of 9, ranked 0..8 best first: top-7 is exactly the set
    logits = torch.arange(9, 0, -1).float()[None]
    out = F.multilabel_metrics(logits, torch.tensor([0]), multihot([list(range(7))], 9))
    assert out["vartopk_strict"] == 100.0 and out["num_images@labels=4+"] == 1
    # swap class 6 with class 7: 6 of 7 found
    logits[0, [6, 7]] = logits[0, [7, 6]]
    out = F.multilabel_metrics(logits, torch.tensor([0]), multihot([list(range(7))], 9))
    assert out["vartopk_strict"] == 0.0 and close(out["vartopk_partial"], 600 / 7)


def test_bad_mode_is_rejected():
    with pytest.raises(ValueError, match="mode"):
        F.multilabel_metrics(HAND_LOGITS, HAND_TARGET, HAND_VALID, mode="nope")


@st.composite
def batches(draw, max_n: int = 12, max_c: int = 9):
    n = draw(st.integers(1, max_n))
    c = draw(st.integers(2, max_c))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    logits = rng.integers(-3, 4, (n, c)).astype(np.float32)  # integer-valued: many ties
    valid = np.zeros((n, c), dtype=bool)
    for i in range(n):
        size = int(rng.integers(0, min(7, c) + 1))
        valid[i, rng.choice(c, size, replace=False)] = True
    target = rng.integers(0, c, n)
    return logits, target, valid


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(batches(), st.sampled_from(F.PRED_MODES), st.integers(1, 4), st.sampled_from([1, 2, 3]))
def test_multilabel_matches_reference(batch, mode, k, min_size):
    logits, target, valid = batch
    t_logits = torch.from_numpy(logits)
    scores = F.ClassScores(t_logits).rows(torch.arange(len(logits))).numpy()
    got = F.multilabel_metrics(
        t_logits,
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
        scores,
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
    t_logits = torch.from_numpy(logits)
    scores = torch.sigmoid(t_logits.double()).numpy()
    got = F.multilabel_metrics(
        t_logits,
        torch.from_numpy(target),
        torch.from_numpy(valid),
        mode="threshold",
        scores="sigmoid",
    )
    want = ref_multilabel(logits, target, valid, scores, mode="threshold")
    assert_same(got, want)


@SETTINGS
@given(st.integers(1, 30), st.integers(1, 8), st.integers(0, 2**31 - 1), st.booleans())
def test_average_precision_matches_reference(n, c, seed, integer_scores):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 4, (n, c)).astype(float) if integer_scores else rng.random((n, c))
    valid = rng.random((n, c)) < rng.random()
    per_class, micro = F.average_precision(torch.from_numpy(scores), torch.from_numpy(valid))
    want = [100 * ref_ap(valid[:, j], scores[:, j]) for j in range(c)]
    assert all(close(a, b) for a, b in zip(per_class.tolist(), want, strict=True))
    want_micro = 100 * ref_ap(valid.ravel(), scores.ravel()) if valid.any() else float("nan")
    assert close(micro, want_micro)


@SETTINGS
@given(st.integers(1, 20), st.integers(1, 12), st.integers(0, 2**31 - 1), st.integers(1, 13))
def test_ranked_topk_matches_stable_argsort(n, c, seed, k):
    x = np.random.default_rng(seed).integers(-2, 3, (n, c)).astype(np.float32)
    got = F.ranked_topk(torch.from_numpy(x), k).numpy()
    assert (got == ref_ranking(x)[:, : min(k, c)]).all()


def test_softmax_path_equals_generic_average_precision():
    # the head's blocked softmax AP equals AP on the materialised softmax matrix
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(300, 70, generator=g)
    valid = torch.rand(300, 70, generator=g) < 0.05
    valid[:5] = False
    cs = F.ClassScores(logits)
    index = valid.any(1).nonzero().squeeze(1)
    got_c, got_m = cs.average_precision(index, valid)
    want_c, want_m = F.average_precision(cs.rows(index), valid[index])
    assert torch.equal(got_c.isnan(), want_c.isnan())
    assert torch.allclose(got_c.nan_to_num(), want_c.nan_to_num(), rtol=0, atol=1e-12)
    assert close(got_m, want_m, 1e-12)


def test_single_label_metrics_unchanged():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(200, 30, generator=g)
    target = torch.randint(0, 30, (200,), generator=g)
    out = F.single_label_metrics(logits, target)
    logp = torch.log_softmax(logits.double(), 1)
    assert close(out["nll"], -logp.gather(1, target[:, None]).mean().item(), 1e-12)
    conf = logp.exp().max(1).values
    hit = logits.argmax(1) == target
    assert close(out["ece"], F.expected_calibration_error(conf, hit), 1e-9)
    assert close(out["top1"], 100 * hit.double().mean().item())


def test_average_precision_leaves_its_input_alone():
    # a one-class float64 matrix is its own transposed copy: it must not be sorted in place
    scores = torch.tensor([[0.2], [0.9], [0.5]], dtype=torch.float64)
    before = scores.clone()
    F.average_precision(scores, torch.tensor([[True], [False], [False]]))
    assert torch.equal(scores, before)
