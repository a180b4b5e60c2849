"""Label sets compared on their common images, the raters' agreement in ``stats``, and
several label sets (``labels=[a,b]``, ``labels.min_score=[...]``) in one command."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from imagenet_multilabel.core.errors import UserError
from imagenet_multilabel.data.labels.options import expand_points, label_options
from imagenet_multilabel.data.labels.originals import original_labels
from imagenet_multilabel.data.labels.sets import LabelSet, load_real, load_tsipras
from imagenet_multilabel.reports.analysis.label_compare import compare_label_sets
from imagenet_multilabel.tasks.stats import stats
from tests.helpers import REPO


def _reference(a: dict, b: dict, original: dict) -> dict:
    """The comparison written independently (sets of the images both annotate)."""
    common = [k for k in a if a[k] and b.get(k)]
    known = [k for k in common if k in original]
    n = len(common)
    return {
        "common": n,
        "same_set": sum(set(a[k]) == set(b[k]) for k in common) / n,
        "same_count": sum(len(a[k]) == len(b[k]) for k in common) / n,
        "original_in_first": sum(original[k] in a[k] for k in known) / len(known),
        "original_in_second": sum(original[k] in b[k] for k in known) / len(known),
        "same_original": sum((original[k] in a[k]) == (original[k] in b[k]) for k in known)
        / len(known),
    }


def test_compare_random_sets_against_reference() -> None:
    rng = random.Random(3)
    for _ in range(20):
        files = [f"{i}.jpg" for i in range(rng.randint(5, 30))]

        def labels(files=files):
            return {
                f: tuple(sorted(rng.sample(range(6), rng.randint(0, 3))))
                for f in files
                if rng.random() < 0.9
            }

        a, b = labels(), labels()
        if not any(a[k] and b.get(k) for k in a):
            continue
        original = {f: rng.randrange(6) for f in files if rng.random() < 0.7}
        if not any(k in original for k in a if a[k] and b.get(k)):
            continue
        got = compare_label_sets(LabelSet("a", a), LabelSet("b", b), original).to_dict()
        for key, value in _reference(a, b, original).items():
            assert got[key] == pytest.approx(value), key


def test_compare_with_itself_and_with_nothing_in_common() -> None:
    s = LabelSet("a", {"x.jpg": (1, 2), "y.jpg": (3,), "z.jpg": ()})
    same = compare_label_sets(s, s, {"x.jpg": 1, "y.jpg": 4})
    assert (same.common, same.same_set, same.same_count, same.mean_jaccard) == (2, 1, 1, 1)
    assert same.original_in_first == 0.5 and same.same_original == 1
    apart = compare_label_sets(s, LabelSet("b", {"w.jpg": (1,)}))
    assert apart.common == 0 and apart.with_original == 0


def test_real_against_tsipras_on_their_common_images() -> None:
    """The shipped originals are the study's images; ReaL's unrated images kept exactly
    their original label."""
    real, tsipras = load_real(), load_tsipras()
    original = original_labels()
    assert sorted(original) == sorted(tsipras.by_file)
    got = compare_label_sets(real, tsipras, original)
    ref = _reference(real.by_file, tsipras.by_file, original)
    assert got.common == ref["common"] and got.same_set == pytest.approx(ref["same_set"])
    rated = {f"ILSVRC2012_val_{i:08d}.JPEG" for i in real.ratings.images.tolist()}
    unrated = [k for k in original if k not in rated]
    assert unrated and all(real.by_file[k] == (original[k],) for k in unrated)


def test_min_score_list_expands_to_named_points() -> None:
    node = {"name": "real", "min_score": [0.5, None, 0.95], "path": None}
    got = expand_points(node)
    assert [(n["name"], n["min_score"]) for n in got] == [
        ("real@0.5", 0.5),
        ("real", None),
        ("real@0.95", 0.95),
    ]
    assert expand_points({"name": "tsipras"}) == [{"name": "tsipras"}]
    with pytest.raises(UserError, match=r"names no operating point"):
        expand_points({"name": "real", "min_score": []})


def test_label_list_override_composes_each_option() -> None:
    """``labels=[real,tsipras]`` is one merged node in Hydra: each option is composed on its
    own, with the ``labels.<key>=`` overrides that option has."""
    overrides = ["labels=[real,tsipras]", "labels.min_score=[0.5,0.9]", "labels.allow_missing=true"]
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = compose("stats", overrides=overrides)
    got = label_options(cfg.labels, overrides)
    assert [n["name"] for n in got] == ["real@0.5", "real@0.9", "tsipras"]
    assert all(n["allow_missing"] is True for n in got)
    assert "min_score" not in got[2] and got[2]["_target_"].endswith("load_tsipras")


@pytest.mark.slow
def test_stats_at_operating_points_with_raters_and_comparison(tmp_path: Path) -> None:
    node = OmegaConf.load(REPO / "conf" / "labels" / "real.yaml")
    node.min_score = [0.8, 0.95]
    metrics = stats({"labels": node, "compare": ["real", "tsipras"]}, output_dir=tmp_path)
    real = load_real()
    assert metrics["real@0.8/empty"] == sum(1 for v in real.by_file.values() if not v)
    high = load_real(min_score=0.95).by_file
    assert metrics["real@0.95/labels_per_image"] == pytest.approx(
        sum(map(len, high.values())) / sum(1 for v in high.values() if v)
    )
    assert metrics["raters/unanimous"] == pytest.approx(real.ratings.agreement()["unanimous"])
    saved = json.loads((tmp_path / "stats.json").read_text())
    names = [(p["first"], p["second"]) for p in saved["compared"]]
    assert names == [("real@0.8", "real@0.95"), ("real@0.8", "real"), ("real@0.8", "tsipras")]
    assert saved["compared"][1]["same_set"] == 1.0  # real.json is the 0.8 point
    text = (tmp_path / "label_stats.txt").read_text()
    assert "raters behind real" in text and "real@0.8 vs tsipras" in text
