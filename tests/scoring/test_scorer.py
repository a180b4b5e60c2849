"""scoring.scorer: the one path from a dataset's logits to its metrics, on a 4 x 8 logits
matrix whose metrics are worked out by hand (and checked against the metric functions)."""

from __future__ import annotations

import math

import pytest
import torch

from imagenet_multilabel.core.errors import UserError
from imagenet_multilabel.scoring.heads import Head, MultiLabelHead, SingleLabelHead
from imagenet_multilabel.scoring.metrics.multilabel import main_object_metrics, multilabel_metrics
from imagenet_multilabel.scoring.metrics.single import single_label_metrics
from imagenet_multilabel.scoring.scorer import HeadSpec, Scorer

# each image's classes from best to worst; logit = 8 - rank (so every row's logsumexp is
# log(e^1 + ... + e^8))
ORDERS = [
    [0, 1, 2, 3, 4, 5, 6, 7],
    [2, 1, 0, 3, 4, 5, 6, 7],
    [3, 4, 5, 6, 7, 0, 1, 2],
    [7, 6, 5, 4, 3, 2, 1, 0],
]
TARGET = [0, 1, 2, 7]
VALID = [[0], [1, 2], [2, 3, 4], [7, 0]]
LOGSUMEXP = math.log(sum(math.exp(j) for j in range(1, 9)))


def logits() -> torch.Tensor:
    out = torch.zeros(len(ORDERS), 8)
    for i, order in enumerate(ORDERS):
        for rank, c in enumerate(order):
            out[i, c] = 8.0 - rank
    return out


def valid() -> torch.Tensor:
    out = torch.zeros(len(VALID), 8, dtype=torch.bool)
    for i, labels in enumerate(VALID):
        out[i, labels] = True
    return out


def default_scorer() -> Scorer:
    """head=default: the single-label head, and the multi-label head where labels exist."""
    return Scorer(
        {
            "single": HeadSpec(SingleLabelHead()),
            "multilabel": HeadSpec(MultiLabelHead(), optional=True),
        }
    )


def test_metrics_of_a_small_matrix_are_those_worked_out_by_hand() -> None:
    m = default_scorer().score("d", logits(), torch.tensor(TARGET), valid())
    assert next(iter(m)) == "num_images" and m["num_images"] == 4
    # top-1: images 0 and 3 right; top-5: image 2's label is ranked last
    assert (m["top1"], m["top5"]) == (50.0, 75.0)
    # nll: the target's logit is 8, 7, 1 and 8
    assert m["nll"] == pytest.approx(LOGSUMEXP - (8 + 7 + 1 + 8) / 4, abs=1e-6)
    # every top-1 is a valid label; the k best (k = number of valid labels) equal the valid
    # set for images 0 and 1 only; image 2 finds 2 of 3, image 3 1 of 2
    assert (m["real_top1"], m["vartopk_strict"]) == (100.0, 50.0)
    assert m["vartopk_partial"] == pytest.approx(100 * (1 + 1 + 2 / 3 + 1 / 2) / 4)
    assert [m[f"num_images@labels={g}"] for g in "123"] == [1, 2, 1]
    assert [m[f"top1@labels={g}"] for g in "123"] == [100.0, 50.0, 0.0]
    assert math.isnan(m["top1@labels=4+"])


def test_the_heads_together_give_the_metric_functions_numbers() -> None:
    x, t, v = logits(), torch.tensor(TARGET), valid()
    expected = {"num_images": 4, **single_label_metrics(x, t), **multilabel_metrics(x, t, v)}
    got = default_scorer().score("d", x, t, v)
    assert list(got) == list(expected)
    assert got == pytest.approx(expected, nan_ok=True)


def test_an_optional_head_is_skipped_without_labels_a_required_one_refused() -> None:
    x, t = logits(), torch.tensor(TARGET)
    assert default_scorer().score("d", x, t, None) == {
        "num_images": 4,
        **single_label_metrics(x, t),
    }
    required = Scorer({"multilabel": HeadSpec(MultiLabelHead())})
    with pytest.raises(UserError, match="head 'multilabel' needs a label set but dataset 'd'"):
        required.score("d", x, t, None)
    with pytest.raises(UserError, match="no head configured"):
        Scorer({})


class _AskedHead(MultiLabelHead):
    """A multi-label head that counts how often the scorer asks whether it needs labels
    (what :meth:`Scorer.check_labels` asks of every head)."""

    asked = 0

    @property
    def needs_labels(self) -> bool:
        self.asked += 1
        return True


def test_each_dataset_is_checked_for_labels_once() -> None:
    """A run checks its datasets before any work; scoring them then checks nothing again
    (a dataset no check saw is checked when it is scored, and so is one whose label set
    is gone)."""
    head = _AskedHead()
    scorer = Scorer({"multilabel": HeadSpec(head)})
    x, t, v = logits(), torch.tensor(TARGET), valid()
    scorer.check_labels({"a": True, "b": True})
    assert head.asked == 1
    scorer.check_labels({"a": True, "b": True})  # the evaluation module's, built later
    scorer.score("a", x, t, v)
    scorer.score("b", x, t, v)
    assert head.asked == 1
    scorer.score("c", x, t, v)
    assert head.asked == 2
    with pytest.raises(UserError, match="needs a label set but dataset 'a' has none"):
        scorer.score("a", x, t, None)


def test_a_class_subset_scores_the_classifier_restricted_to_it() -> None:
    """Classes 0, 1 and 2 only, targets 0, 1, 2, 2: the best of the three are 0, 2, 0 and 2
    (images 0 and 3 right; on all 8 classes only image 0 is), and the softmax is over the
    three (logits 8,7,6 / 6,7,8 / 3,2,1 / 1,2,3, so each row's logsumexp is L3 or L3 - 5)."""
    x, t = logits(), torch.tensor([0, 1, 2, 2])
    assert default_scorer().score("d", x, t, None)["top1"] == 25.0
    m = default_scorer().score("d", x, t, None, class_subset=[0, 1, 2])
    assert (m["top1"], m["top5"]) == (50.0, 100.0)
    l3 = math.log(math.exp(8) + math.exp(7) + math.exp(6))
    assert m["nll"] == pytest.approx(l3 - (8 + 7 + (5 + 1) + (5 + 3)) / 4, abs=1e-6)


def test_main_objects_add_main_top1_whatever_the_heads() -> None:
    """Main objects 0, 2, none, 7: the top-1s are 0, 2, 3, 7, so every image that names
    one is right."""
    x, v, main = logits(), valid(), torch.tensor([0, 2, -1, 7])
    m = Scorer({"single": HeadSpec(SingleLabelHead())}).score(
        "d", x, torch.tensor(TARGET), v, main=main
    )
    assert m["main_top1"] == 100.0
    assert (m["main_top1@labels=1"], m["main_top1@labels=2"]) == (100.0, 100.0)
    assert math.isnan(m["main_top1@labels=3"])  # image 2 names no main object
    assert {k: m[k] for k in main_object_metrics(x, main, v)} == pytest.approx(
        main_object_metrics(x, main, v), nan_ok=True
    )


class Constant(Head):
    """A head of one metric, ``top1``, always ``value``."""

    def __init__(self, value: float) -> None:
        self.value = value

    def metrics(self, logits, target, valid, summary=None) -> dict[str, float]:
        return {"top1": self.value}


def test_two_heads_writing_one_name_need_a_prefix() -> None:
    x, t = logits(), torch.tensor(TARGET)
    agree = Scorer({"single": HeadSpec(SingleLabelHead()), "same": HeadSpec(Constant(50.0))})
    assert agree.score("d", x, t, None)["top1"] == 50.0  # the same value: no conflict
    clash = Scorer({"single": HeadSpec(SingleLabelHead()), "other": HeadSpec(Constant(1.0))})
    with pytest.raises(UserError, match="heads 'single' and 'other' both write metric 'top1'"):
        clash.score("d", x, t, None)
    apart = Scorer(
        {"single": HeadSpec(SingleLabelHead()), "other": HeadSpec(Constant(1.0), prefix="c.")}
    )
    m = apart.score("d", x, t, None)
    assert (m["top1"], m["c.top1"]) == (50.0, 1.0)
