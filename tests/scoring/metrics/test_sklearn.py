"""The metrics against scikit-learn, their peer where one exists (docs/metrics-api.md, "Against
torchmetrics and scikit-learn"): the public ``multilabel_capability`` on random logits and
label sets (several seeds, random sizes, some images without a label) and scikit-learn's
function on the same data, to float32 rounding. Accuracies are in percent here, fractions
there. Where the definitions differ (``map_macro`` leaves out the classes without a
positive; scikit-learn counts them as AP 0) the documented difference is checked too.

The predicted sets given to scikit-learn are built here from the logits alone (the ``k``
best classes of each image, or a sigmoid score ``>= threshold``), not by the project's code.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    hamming_loss,
    log_loss,
    precision_score,
    recall_score,
    top_k_accuracy_score,
)

from imagenet_multilabel.scoring.capability import multilabel_capability

SEEDS = range(6)
RTOL = 1e-6  # float32 logits, float64 sums on both sides


def random_data(seed: int, *, every_class: bool = False):
    """(logits, target, valid) of a random size: ~10% of the images without a valid label,
    the others 1-4 labels, the original label among them. ``every_class``: each class has a
    positive among the labelled images (then macro AP means the same on both sides)."""
    rng = np.random.default_rng(seed)
    n, c = int(rng.integers(60, 400)), int(rng.integers(6, 40))
    logits = rng.normal(0.0, 2.0, (n, c)).astype(np.float32)
    # no logit near 0, where a float32 and a float64 sigmoid could fall on either side of 0.5
    logits[np.abs(logits) < 1e-3] = 1e-3
    target = rng.integers(0, c, n)
    valid = np.zeros((n, c), dtype=bool)
    sizes = rng.choice([0, 1, 2, 3, 4], n, p=[0.1, 0.5, 0.2, 0.1, 0.1])
    for i in range(n):
        if sizes[i]:
            labels = rng.choice(c, sizes[i], replace=False)
            labels[0] = target[i] if target[i] not in labels[1:] else labels[0]
            valid[i, labels] = True
    if every_class:
        labelled = np.flatnonzero(sizes > 0)
        valid[labelled[np.arange(c) % len(labelled)], np.arange(c)] = True
    logits[np.arange(n), target] += 2.0  # a model better than chance
    return torch.from_numpy(logits), torch.from_numpy(target), torch.from_numpy(valid)


def softmax(logits: torch.Tensor) -> np.ndarray:
    x = logits.double().numpy()
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def best_k(logits: torch.Tensor, k: np.ndarray) -> np.ndarray:
    """Multi-hot: the ``k[i]`` highest logits of each row (ties: the lower class)."""
    x = logits.numpy()
    order = np.argsort(-x, axis=1, kind="stable")
    pred = np.zeros(x.shape, dtype=bool)
    for i, ki in enumerate(k):
        pred[i, order[i, :ki]] = True
    return pred


def check_sets(metrics: dict[str, float], truth: np.ndarray, pred: np.ndarray) -> None:
    """precision, recall, f1 (micro), subset accuracy and Hamming loss against scikit-learn."""
    want = {
        "precision": precision_score(truth, pred, average="micro", zero_division=np.nan),
        "recall": recall_score(truth, pred, average="micro", zero_division=np.nan),
        "f1": f1_score(truth, pred, average="micro", zero_division=np.nan),
        "subset_accuracy": accuracy_score(truth, pred),
        "hamming_loss": hamming_loss(truth, pred),
    }
    for name, value in want.items():
        assert metrics[name] == pytest.approx(100 * value, rel=RTOL), name


@pytest.mark.parametrize("seed", SEEDS)
def test_top_k_accuracy_and_nll_equal_scikit_learn(seed: int) -> None:
    logits, target, valid = random_data(seed)
    metrics = multilabel_capability(logits, target, valid)
    probs, labels = softmax(logits), np.arange(logits.shape[1])
    for k in (1, 5):
        want = top_k_accuracy_score(target.numpy(), probs, k=k, labels=labels)
        assert metrics[f"top{k}"] == pytest.approx(100 * want, rel=RTOL)
    assert metrics["nll"] == pytest.approx(log_loss(target.numpy(), probs, labels=labels), rel=RTOL)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("scores", ["softmax", "sigmoid"])
def test_average_precision_equals_scikit_learn_where_every_class_has_a_positive(
    seed: int, scores: str
) -> None:
    logits, target, valid = random_data(seed, every_class=True)
    metrics = multilabel_capability(logits, target, valid, scores=scores)
    lab = valid.any(dim=1).numpy()
    score = softmax(logits) if scores == "softmax" else 1 / (1 + np.exp(-logits.double().numpy()))
    truth, score = valid.numpy()[lab], score[lab]
    assert metrics["map_micro"] == pytest.approx(
        100 * average_precision_score(truth, score, average="micro"), rel=RTOL
    )
    assert metrics["map_macro"] == pytest.approx(
        100 * average_precision_score(truth, score, average="macro"), rel=RTOL
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_map_macro_leaves_out_classes_without_a_positive_where_scikit_learn_counts_0(
    seed: int,
) -> None:
    logits, target, valid = random_data(seed)
    valid[:, :3] = False  # three classes that no image has
    metrics = multilabel_capability(logits, target, valid)
    lab = valid.any(dim=1).numpy()
    truth, score = valid.numpy()[lab], softmax(logits)[lab]
    has = truth.any(axis=0)
    assert not has.all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "No positive class found in y_true"
        macro = average_precision_score(truth, score, average="macro")
        per_class = average_precision_score(truth, score, average=None)
    assert (per_class[~has] == 0).all()  # scikit-learn: AP 0 for a class without a positive
    # the documented difference: the mean over all classes is pulled toward 0 by their share
    assert metrics["map_macro"] == pytest.approx(100 * macro * len(has) / has.sum(), rel=RTOL)
    assert metrics["map_macro"] > 100 * macro
    # over the same classes, the same number
    assert metrics["map_macro"] == pytest.approx(100 * per_class[has].mean(), rel=RTOL)
    assert metrics["map_micro"] == pytest.approx(
        100 * average_precision_score(truth, score, average="micro"), rel=RTOL
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_predicted_sets_equal_scikit_learn(seed: int) -> None:
    """The sets of each mode that scikit-learn can be given independently: ``vartopk`` (the
    image's number of valid labels), ``topk`` and a sigmoid ``threshold``; labelled images
    only, as the docs say."""
    logits, target, valid = random_data(seed)
    lab = valid.any(dim=1)
    truth, mine = valid.numpy()[lab.numpy()], logits[lab]
    k = int(np.random.default_rng(seed).integers(1, 4))
    cases = {
        "vartopk": ({}, best_k(mine, truth.sum(axis=1))),
        "topk": ({"k": k}, best_k(mine, np.full(len(truth), k))),
        "threshold": (
            {"scores": "sigmoid", "threshold": 0.5},
            1 / (1 + np.exp(-mine.double().numpy())) >= 0.5,
        ),
    }
    for mode, (options, pred) in cases.items():
        metrics = multilabel_capability(logits, target, valid, mode=mode, **options)
        check_sets(metrics, truth, pred)
