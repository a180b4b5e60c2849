"""Section selection against predictions built so that each image's section is known."""

from __future__ import annotations

import numpy as np
import pytest

from imagenet_multilabel.reports.gallery.samples import build_samples
from imagenet_multilabel.reports.gallery.selection import (
    RowStats,
    ranking,
    row_stats,
    select_sections,
    softmax64,
)
from imagenet_multilabel.reports.images.photos import ImageLocator, tile_classes
from imagenet_multilabel.runs.rundir import RunDir
from tests.helpers import class_of
from tests.reports.gallery.hand_built import composite_dataset, plain_dataset


def sections_of(stats: RowStats, target, **kw) -> dict:
    kw = {"per_section": 1000, "seed": 0, "confident": 0.5, **kw}
    return {s.spec.key: s for s in select_sections(stats, target, **kw)}


def test_row_stats_match_a_full_ranking_with_ties() -> None:
    rng = np.random.default_rng(3)
    logits = rng.integers(-3, 4, (300, 40)).astype(np.float32)  # many ties
    valid = rng.random((300, 40)) < 0.08
    valid[:7] = False
    stats = row_stats(logits, valid, chunk_rows=64)  # several chunks
    order = ranking(logits)
    rank = np.argsort(order, axis=1) + 1
    assert np.array_equal(stats.top1, order[:, 0])
    assert np.allclose(stats.confidence, softmax64(logits).max(axis=1), rtol=0, atol=1e-12)
    worst = np.array([rank[i][valid[i]].max() if valid[i].any() else 0 for i in range(300)])
    assert np.array_equal(stats.worst_rank, worst)
    assert np.array_equal(stats.num_valid, valid.sum(1))
    assert np.array_equal(stats.top1_valid, valid[np.arange(300), order[:, 0]])


def test_softmax64_is_float64_and_stable() -> None:
    p = softmax64(np.array([[1000.0, 1000.0, -1000.0]], dtype=np.float32))
    assert p.dtype == np.float64 and np.allclose(p, [[0.5, 0.5, 0.0]])


def test_sections_of_hand_built_predictions() -> None:
    d = plain_dataset()
    stats = row_stats(d.logits, d.valid)
    got = sections_of(stats, d.target)
    assert list(got) == ["right_scored_wrong", "confidently_wrong", "missed_second", "no_label"]
    for key in got:
        assert set(got[key].rows.tolist()) == d.rows(key), key
        assert got[key].total == len(d.rows(key))
    for key in ("right_scored_wrong", "confidently_wrong", "no_label"):
        conf = stats.confidence[got[key].rows]
        assert np.all(np.diff(conf) <= 0), f"{key}: most confident first"
    worst = stats.worst_rank[got["missed_second"].rows]
    assert np.all(np.diff(worst) <= 0) and worst.min() > 900
    # the low-confidence errors are in no section; a lower threshold takes them in
    unsure = d.rows("unsure_wrong")
    assert not unsure & set(np.concatenate([s.rows for s in got.values()]).tolist())
    low = sections_of(stats, d.target, confident=0.0)["confidently_wrong"]
    assert set(low.rows.tolist()) == d.rows("confidently_wrong") | unsure


def test_a_run_without_labels_has_one_single_label_section() -> None:
    d = plain_dataset(with_labels=False)
    stats = row_stats(d.logits)
    assert stats.num_valid is None and stats.worst_rank is None
    got = sections_of(stats, d.target)
    assert list(got) == ["wrong_top1"]
    assert set(got["wrong_top1"].rows.tolist()) == set(np.flatnonzero(stats.top1 != d.target))
    assert np.all(np.diff(stats.confidence[got["wrong_top1"].rows]) <= 0)


def test_sample_is_seeded_bounded_and_ordered() -> None:
    rng = np.random.default_rng(0)
    n = 20_000
    logits = rng.normal(size=(n, 50)).astype(np.float32)
    valid = rng.random((n, 50)) < 0.05
    target = rng.integers(0, 50, n)
    stats = row_stats(logits, valid)
    a = sections_of(stats, target, per_section=30, seed=1)
    b = sections_of(stats, target, per_section=30, seed=1)
    c = sections_of(stats, target, per_section=30, seed=2)
    full = sections_of(stats, target, per_section=n)
    for key, section in a.items():
        assert len(section.rows) == min(30, section.total)
        assert section.total == full[key].total
        assert np.array_equal(section.rows, b[key].rows)
        assert set(section.rows.tolist()) <= set(full[key].rows.tolist())
    assert any(not np.array_equal(a[k].rows, c[k].rows) for k in a)
    missed = a["missed_second"].rows
    assert np.all(np.diff(stats.worst_rank[missed]) <= 0)


def test_composite_section_and_tile_labels(labeled_run) -> None:
    run_dir, datasets = labeled_run
    d = datasets["patchml"]
    data = RunDir(run_dir).predictions("patchml")
    stats = row_stats(data["logits"], data["valid"])
    got = sections_of(stats, data["target"], composite=True)
    assert set(got["composites"].rows.tolist()) == set(range(len(d.files)))
    assert set(got["missed_second"].rows.tolist()) == d.rows("missed_second")
    # top-1 is always the second tile: valid, not the original label
    assert set(got["right_scored_wrong"].rows.tolist()) == set(range(len(d.files)))

    samples = build_samples(data, range(len(d.files)), ImageLocator(None), composite=True)
    for i, name in enumerate(d.files):
        a, b = name.split("+")
        tiles = samples[i].tiles
        assert [t.file for t in tiles] == [a, b]
        assert [t.label for t in tiles] == [class_of(a), class_of(b)]
        assert tiles[1].rank == 1 and tiles[0].rank == (2 if i % 2 == 0 else 1000)
        assert all(t.source is None for t in tiles)  # no root: nothing found


def test_tile_labels_without_names_come_from_other_composites() -> None:
    paths = np.array(["x.jpg+y.jpg", "y.jpg+z.jpg", "z.jpg+x.jpg"])
    assert tile_classes(paths, np.array([1, 2, 3])) == {"x.jpg": 1, "y.jpg": 2, "z.jpg": 3}


def test_samples_top5_and_ranks() -> None:
    d = composite_dataset()
    data = {"path": np.array(d.files), "target": d.target, "logits": d.logits, "valid": d.valid}
    sample = build_samples(data, [1], ImageLocator(None), composite=True)[1]
    probs = softmax64(d.logits[1:2])[0]
    top = np.argsort(-probs, kind="stable")[:5]
    assert [c for c, _ in sample.top] == top.tolist()
    assert [p for _, p in sample.top] == pytest.approx(probs[top].tolist())
    assert sample.confidence == pytest.approx(probs.max())
    assert [r for _, r in sample.valid_ranks] == [1, 1000]
    assert sample.is_valid(sample.target) and not sample.is_valid(int(top[1]))
