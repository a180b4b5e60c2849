"""ReaL from its raters' scores: the shipped pairs, real.json at its operating point, any
other operating point, the raters' votes and their agreement (compared with the released
arrays in ../shared/data/labels/reassessed-imagenet when present)."""

from __future__ import annotations

import json
import random
from itertools import pairwise

import numpy as np
import pytest

from imagenet_multilabel.core.errors import DataError, UserError
from imagenet_multilabel.data.labels.ratings import (
    REAL_OPERATING_POINT,
    REAL_SCORES,
    RatedPairs,
    read_rated_pairs,
)
from imagenet_multilabel.data.labels.sets import load_real, val_file_name
from tests.helpers import REAL_JSON, SHARED_LABELS

RELEASE = SHARED_LABELS / "reassessed-imagenet"
requires_release = pytest.mark.skipif(
    not (RELEASE / "scores.npz").is_file() or not (RELEASE / "raters.npz").is_file(),
    reason=f"needs ReaL's released scores and raters ({RELEASE} not found)",
)


@pytest.fixture(scope="module")
def pairs() -> RatedPairs:
    return read_rated_pairs()


@pytest.fixture(scope="module")
def real_json() -> list[list[int]]:
    return json.loads(REAL_JSON.read_text())


def _reference(pairs: RatedPairs, real_json: list[list[int]], t: float) -> dict[str, tuple]:
    """ReaL at ``t`` written independently: rated images from their pairs, others as is."""
    out = {val_file_name(i + 1): tuple(sorted(e)) for i, e in enumerate(real_json)}
    rated: dict[int, set[int]] = {}
    for img, cls, s in zip(
        pairs.image.tolist(), pairs.label.tolist(), pairs.score.tolist(), strict=True
    ):
        rated.setdefault(img, set())
        if s >= t:
            rated[img].add(cls)
    out.update({val_file_name(i): tuple(sorted(c)) for i, c in rated.items()})
    return out


def test_real_json_is_the_operating_point(pairs: RatedPairs, real_json: list) -> None:
    """real.json is exactly the rated pairs scoring >= 0.8 (and the unrated images' single
    label); a point just above its lowest kept score already drops a label."""
    at = load_real(min_score=REAL_OPERATING_POINT)
    assert at.by_file == load_real().by_file and at.name == "real@0.8"
    assert REAL_OPERATING_POINT == 0.8
    in_real = np.array(
        [
            c in real_json[i - 1]
            for i, c in zip(pairs.image.tolist(), pairs.label.tolist(), strict=True)
        ]
    )
    assert pairs.score[in_real].min() >= 0.8 > pairs.score[~in_real].max()
    just_above = float(np.nextafter(pairs.score[in_real].min(), 1.0))
    assert load_real(min_score=just_above).by_file != at.by_file
    unrated = set(range(1, 50_001)) - set(pairs.image.tolist())
    assert len(unrated) == 25_111 and all(len(real_json[i - 1]) == 1 for i in unrated)


@pytest.mark.slow
def test_any_operating_point(pairs: RatedPairs, real_json: list) -> None:
    """For random points (and the ends), the set equals an independent reference and is
    nested: a higher point keeps a subset of each image's labels."""
    rng = random.Random(0)
    tie = float(pairs.score[rng.randrange(len(pairs))])  # a point equal to a score: kept
    points = sorted([0.0, 1.0, tie] + [rng.random() for _ in range(2)])
    sets = [load_real(min_score=t).by_file for t in points]
    for t, got in zip(points, sets, strict=True):
        assert got == _reference(pairs, real_json, t), t
    for low, high in pairwise(sets):
        assert all(set(high[k]) <= set(low[k]) for k in low)


def test_min_score_refused_outside_0_1() -> None:
    for bad in (1.5, -0.1, "high", True):
        with pytest.raises(UserError, match="min_score"):
            load_real(min_score=bad)


def test_votes_and_agreement(pairs: RatedPairs) -> None:
    assert len(pairs) == 184_962 and len(pairs.images) == 24_889
    assert (pairs.votes.sum(axis=1) == 5).all()
    name = val_file_name(int(pairs.image[0]))
    votes = pairs.votes_of(name)
    rows = np.flatnonzero(pairs.image == pairs.image[0])
    assert sorted(votes) == sorted(pairs.label[rows].tolist())
    for r in rows:
        v = votes[int(pairs.label[r])]
        assert (v["no"], v["maybe"], v["yes"]) == tuple(pairs.votes[r]) and v["raters"] == 5
    assert pairs.votes_of("ILSVRC2012_val_00000000.JPEG") == {}
    assert pairs.votes_of("photo.jpg") == {}
    a = pairs.agreement()
    same = [max(v) == sum(v) for v in pairs.votes.tolist()]
    assert a["unanimous"] == pytest.approx(sum(same) / len(same))
    assert a["unanimous"] == pytest.approx(
        a["unanimous_yes"]
        + a["unanimous_no"]
        + sum(v[1] == 5 for v in pairs.votes.tolist()) / len(pairs)
    )
    assert sum(b["pairs"] for b in a["score_bins"]) == len(pairs)


def test_weights_are_scores(pairs: RatedPairs) -> None:
    names = [val_file_name(int(pairs.image[0])), "ILSVRC2012_val_00000003.JPEG", "x.jpg"]
    w = pairs.weights(names)
    rows = np.flatnonzero(pairs.image == pairs.image[0])
    assert w.shape == (3, 1000) and np.isnan(w[2]).all()
    np.testing.assert_allclose(w[0, pairs.label[rows]], pairs.score[rows], rtol=1e-6)
    assert (np.nan_to_num(w[0]) > 0).sum() <= len(rows)
    rated3 = 3 in set(pairs.image.tolist())
    assert np.isnan(w[1]).all() != rated3


def test_bad_scores_file(tmp_path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_rated_pairs(tmp_path / "none.npz")
    np.savez(tmp_path / "x.npz", image=np.zeros(2))
    with pytest.raises(DataError, match="not a ReaL scores file"):
        read_rated_pairs(tmp_path / "x.npz")
    with pytest.raises(DataError, match="outside"):
        RatedPairs(np.ones(1), np.ones(1), np.array([1.5]), np.zeros((1, 3)))


@requires_release
def test_shipped_file_is_the_release() -> None:
    """The shipped pairs are the released scores bit for bit, and the votes the raters'
    one-hot answers summed."""
    scores = np.load(RELEASE / "scores.npz", allow_pickle=False)
    raters = np.load(RELEASE / "raters.npz", allow_pickle=False)
    shipped = np.load(REAL_SCORES, allow_pickle=False)
    info = scores["info"]
    assert np.array_equal(shipped["score"], scores["tensor"])
    assert [val_file_name(int(i)) for i in shipped["image"]] == info[:, 0].tolist()
    assert shipped["label"].tolist() == [int(c) for c in info[:, 1]]
    assert np.array_equal(shipped["votes"], raters["tensor"].sum(axis=0))
    assert load_real(RELEASE / "real.json").by_file == load_real(min_score=0.8).by_file
