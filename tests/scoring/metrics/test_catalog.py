"""The metric catalog (scoring/metrics/catalog.py): every metric the scorer writes has
exactly one declaration and every declaration is written; composite keys name their
metric; the config check, the scorer and docs/heads-and-metrics.md read it."""

from __future__ import annotations

import random

import pytest
import torch

from imagenet_multilabel.checks import check_run_settings, check_train_settings
from imagenet_multilabel.core.errors import UserError
from imagenet_multilabel.scoring.heads import Head, MultiLabelHead, SingleLabelHead
from imagenet_multilabel.scoring.metrics.catalog import (
    BY_NAME,
    FAMILIES,
    METRICS,
    check_metric_name,
    declaration,
    family,
    lower_is_better,
    markdown_table,
    with_table,
)
from imagenet_multilabel.scoring.metrics.multilabel import PRED_MODES
from imagenet_multilabel.scoring.metrics.names import SUBGROUP_ACCURACIES, is_count
from imagenet_multilabel.scoring.metrics.scores import SCORE_KINDS
from imagenet_multilabel.scoring.scorer import HeadSpec, Scorer
from tests.helpers import REPO


def scored(heads: dict[str, Head], labelled: bool, main: bool, seed: int = 0) -> list[str]:
    """The metric names a scorer of ``heads`` writes for 40 random images of 12 classes."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(40, 12, generator=gen)
    target = torch.randint(0, 12, (40,), generator=gen)
    valid = torch.rand(40, 12, generator=gen) < 0.2 if labelled else None
    objects = torch.randint(-1, 12, (40,), generator=gen) if main else None
    scorer = Scorer({n: HeadSpec(h) for n, h in heads.items()})
    return list(scorer.score("d", logits, target, valid, main=objects))


@pytest.mark.parametrize("mode", PRED_MODES)
@pytest.mark.parametrize("scores", SCORE_KINDS)
def test_what_the_heads_write_is_what_is_declared(mode: str, scores: str) -> None:
    """For every mode and score kind, and random confidences: the names written are the
    declared ones, each once, in the families that wrote them."""
    rng = random.Random(f"{mode}{scores}")
    confidences = tuple(round(rng.uniform(0.05, 0.95), rng.randint(1, 3)) for _ in range(3))
    heads = {
        "single": SingleLabelHead(),
        "multilabel": MultiLabelHead(mode=mode, scores=scores, k=2, confidences=confidences),
    }
    written = scored(heads, labelled=True, main=True)
    declared = [k for m in METRICS if not m.optional for k in m.written_as(confidences)]
    assert len(written) == len(set(written))
    assert set(written) == set(declared)
    for key in written:
        assert declaration(key, ()) is BY_NAME[key.partition("@")[0]]


def test_without_a_label_set_the_single_label_metrics_and_the_count() -> None:
    written = scored({"single": SingleLabelHead()}, labelled=False, main=False)
    assert written == ["num_images", *(m.name for m in family("single"))]
    assert not any(m.needs_labels for m in family("single") + family("scorer"))
    assert all(m.needs_labels for m in family("multilabel") + family("main_object"))


def test_a_head_writing_an_undeclared_metric_is_refused() -> None:
    class Typo(Head):
        def metrics(self, logits, target, valid, summary=None) -> dict[str, float]:
            return {"top_1": 1.0}

    with pytest.raises(UserError, match="head 'typo' writes metric 'top_1', which no decl"):
        scored({"single": SingleLabelHead(), "typo": Typo()}, labelled=False, main=False)


def test_declarations_agree_with_the_name_rules() -> None:
    assert {m.family for m in METRICS} == set(FAMILIES)
    for m in METRICS:
        assert (m.unit == "count") == is_count(m.name) == (m.higher_is_better is None)
    # what the multi-label function computes per subgroup is what is declared per subgroup
    per_group = [
        m.name
        for m in METRICS
        if m.by_label_count and m.unit != "count" and m.family in ("single", "multilabel")
    ]
    assert per_group == list(SUBGROUP_ACCURACIES)


PREFIXES = ("", "topk.", "finetuned.", "delta.topk.")


def test_every_composite_key_names_its_metric() -> None:
    """Every declared metric, in every form it is written, behind every kind of prefix;
    and what is not written is not a metric."""
    for m in METRICS:
        for key in m.written_as((0.5, 0.125, 1)):
            for prefix in PREFIXES:
                assert declaration(prefix + key) is m, prefix + key
                assert declaration(prefix + key, PREFIXES) is m
                assert declaration(prefix + key, ()) is (m if not prefix else None)
        if not m.by_label_count:
            assert declaration(f"{m.name}@labels=1") is None
        if not m.by_confidence:
            assert declaration(f"{m.name}@p>=0.5") is None
        else:
            assert declaration(m.name) is None  # written only with a threshold
    for bad in ("top1@labels=5", "top1@labels=", "top_1", "confident_errors_valid@p>=x", ""):
        assert declaration(bad) is None, bad
    assert declaration("ml_hamming_loss") is BY_NAME["hamming_loss"]  # a prefix without '.'


def test_lower_is_better_also_behind_prefixes() -> None:
    lower = {m.name for m in METRICS if m.higher_is_better is False}
    assert lower == {"nll", "ece", "hamming_loss", "ece_multilabel"}
    for name in lower:
        assert lower_is_better(name) and lower_is_better(f"finetuned.{name}")
    assert not any(lower_is_better(k) for k in ("top1", "delta.top1", "num_images", "unknown"))


def test_a_misspelt_metric_is_refused_with_the_closest_name() -> None:
    with pytest.raises(UserError, match=r"^x=d/vartopk_stric: .* did you mean 'vartopk_strict'"):
        check_metric_name("x=d/vartopk_stric", "vartopk_stric")
    with pytest.raises(UserError, match="did you mean 'topk.precision'"):
        check_metric_name("x", "topk.precison", ["topk."])
    check_metric_name("x", "topk.precision", ["topk."])


def test_the_config_check_reads_the_catalog_before_torch(compose_cfg) -> None:
    """optimized_metric and checkpoint.monitor name declared metrics (behind the heads'
    prefixes and train.py's stages); a typo fails in the config check."""
    check_run_settings(compose_cfg("optimized_metric=demo/top3"))
    check_run_settings(compose_cfg("optimized_metric='demo/confident_errors_valid@p>=0.8'"))
    check_run_settings(
        compose_cfg("+head.topk={_target_:x,prefix:t.}", "optimized_metric=demo/t.precision")
    )
    with pytest.raises(UserError, match="optimized_metric=demo/top_3: .*did you mean 'top3'"):
        check_run_settings(compose_cfg("optimized_metric=demo/top_3"))
    with pytest.raises(UserError, match="'t.precision' is not a metric"):
        check_run_settings(compose_cfg("optimized_metric=demo/t.precision"))
    check_train_settings(
        compose_cfg("optimized_metric=heldout_seen/delta.ece", config_name="train")
    )
    for option, name in (
        ("optimized_metric", "heldout_seen/finetuned.top_1"),
        ("checkpoint.monitor", "heldout_seen/top_1"),
    ):
        cfg = compose_cfg(f"{option}={name}", config_name="train")
        with pytest.raises(UserError, match=f"{option}={name}: .* did you mean"):
            check_train_settings(cfg)


def test_the_docs_table_is_the_catalog() -> None:
    doc = (REPO / "docs" / "heads-and-metrics.md").read_text()
    assert with_table(doc) == doc, "run python -m imagenet_multilabel.scoring.metrics.catalog"
    for m in METRICS:
        assert f"`{m.name}" in markdown_table()
