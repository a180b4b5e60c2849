"""Heads: the multi-label head's names and values, its one-line errors, and the configs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imagenet_multilabel.core.errors import UserError
from imagenet_multilabel.scoring.heads import MultiLabelHead, SingleLabelHead
from imagenet_multilabel.scoring.metrics.catalog import family
from tests.helpers import REPO
from tests.scoring.metrics.np_reference import close
from tests.scoring.metrics.np_reference import multilabel as ref_multilabel
from tests.scoring.metrics.np_reference import single_label as ref_single_label

CONF = REPO / "conf" / "head"

EXPECTED_NAMES = [
    "num_images", "num_labeled", "num_unlabeled", "real_top1", "real_top5",
    "vartopk_strict", "vartopk_partial",
    *[f"{m}@labels={g}" for g in ("1", "2", "3", "4+")
      for m in ("num_images", "top1", "real_top1", "vartopk_strict")],
    "asma", "map_macro", "map_micro", "precision", "recall", "f1", "subset_accuracy",
    "hamming_loss", "confident_errors_valid@p>=0.5", "confident_errors_valid@p>=0.8",
    "ece_multilabel",
]  # fmt: skip


def batch(n: int = 40, c: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, (n, c)).astype(np.float32)
    valid = np.zeros((n, c), dtype=bool)
    for i in range(n):
        valid[i, rng.choice(c, rng.integers(0, 7), replace=False)] = True
    return logits, rng.integers(0, c, n), valid


def test_multilabel_head_names_and_values():
    logits, target, valid = batch()
    head = MultiLabelHead()
    assert head.needs_labels and not SingleLabelHead().needs_labels
    got = head.metrics(torch.from_numpy(logits), torch.from_numpy(target), torch.from_numpy(valid))
    assert list(got) == EXPECTED_NAMES
    want = ref_multilabel(logits, target, valid)
    assert {k for k in want if not close(got[k], want[k])} == set()


@pytest.mark.parametrize(
    "kwargs",
    [{"mode": "topk", "k": 2}, {"mode": "threshold", "threshold": 0.2},
     {"mode": "cumulative", "mass": 0.8}, {"mode": "threshold", "scores": "sigmoid"}],
)  # fmt: skip
def test_multilabel_head_modes(kwargs):
    logits, target, valid = batch(seed=1)
    got = MultiLabelHead(**kwargs).metrics(
        torch.from_numpy(logits), torch.from_numpy(target), torch.from_numpy(valid)
    )
    want = ref_multilabel(logits, target, valid, **kwargs)
    assert {k for k in want if not close(got[k], want[k])} == set()


def test_single_head_keeps_its_metrics():
    logits, target, _valid = batch()
    got = SingleLabelHead().metrics(torch.from_numpy(logits), torch.from_numpy(target), None)
    assert list(got) == [m.name for m in family("single")]
    want = ref_single_label(logits, target)
    assert {k for k in want if not close(got[k], want[k])} == set()


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_multilabel_head_without_labels_is_a_user_error():
    logits, target, _ = batch()
    with pytest.raises(UserError) as exc:
        MultiLabelHead().metrics(torch.from_numpy(logits), torch.from_numpy(target), None)
    assert "label set" in one_line(exc)


def test_multilabel_head_class_mismatch_is_a_user_error():
    logits, target, _valid = batch(c=12)
    with pytest.raises(UserError) as exc:
        MultiLabelHead().metrics(
            torch.from_numpy(logits), torch.from_numpy(target), torch.zeros(40, 10, dtype=bool)
        )
    assert "10 classes" in one_line(exc) and "12" in one_line(exc)


@pytest.mark.parametrize(
    "kwargs", [{"mode": "best"}, {"scores": "relu"}, {"mode": "topk", "k": 0},
               {"mode": "cumulative", "mass": 1.5}],
)  # fmt: skip
def test_bad_head_arguments_are_user_errors(kwargs):
    with pytest.raises(UserError) as exc:
        MultiLabelHead(**kwargs)
    one_line(exc)


def test_head_configs(compose_cfg):
    from imagenet_multilabel.core.config import instantiate_map

    default = compose_cfg("head=default").head
    assert set(default) == {"single", "multilabel"} and default.multilabel.if_labels
    listed = compose_cfg("head=[single,multilabel]").head
    assert "if_labels" not in listed.multilabel
    heads = instantiate_map(default, skip=("if_labels",))
    assert isinstance(heads["multilabel"], MultiLabelHead) and heads["multilabel"].mode == "vartopk"
    assert isinstance(heads["single"], SingleLabelHead)
