"""Label statistics: hand-made sets, the real ReaL / Multilabelfy files, the stats task."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from imagenet_multilabel.core.errors import DataError, UserError
from imagenet_multilabel.data.labels.sets import LabelSet
from imagenet_multilabel.reports.analysis.label_stats import (
    label_stats,
    plot_label_counts,
    render_table,
)
from imagenet_multilabel.tasks.stats import stats
from tests.helpers import MULTILABELFY_JSON, REAL_JSON, REPO

SMALL = LabelSet(
    "small",
    {
        "a.jpg": (),
        "b.jpg": (1,),
        "c.jpg": (1, 2),
        "d.jpg": (1, 2, 3),
        "e.jpg": (0, 1, 2, 3, 4, 5),
        "f.jpg": (7,),
    },
)


def test_small_counts_shares_and_pairs() -> None:
    s = label_stats(SMALL, top_k=2)
    assert s.images == 6 and s.empty == 1
    assert s.by_count == {"0": 1, "1": 2, "2": 1, "3": 1, "4": 0, "5+": 1}
    assert s.multi_share == pytest.approx(3 / 6)
    assert s.multi_share_labeled == pytest.approx(3 / 5)
    # (1, 2) is in c, d, e; then (1, 3) and (2, 3) in d, e: ties broken by class index
    assert s.top_pairs == [(1, 2, 3), (1, 3, 2)]
    pairs = s.to_dict()["top_pairs"]
    assert pairs[0]["names"] == ["goldfish", "great white shark"] and pairs[0]["images"] == 3


def test_restricted_to_dataset_files() -> None:
    s = label_stats(SMALL, ["x/c.jpg", "f.jpg", "z.jpg"], allow_missing=True)
    assert s.images == 3 and s.missing == 1 and s.empty == 1  # z.jpg counts as empty
    assert s.by_count["1"] == 1 and s.by_count["2"] == 1
    with pytest.raises(DataError, match=r"allow_missing=true"):
        label_stats(SMALL, ["b.jpg", "z.jpg"])
    with pytest.raises(DataError, match=r"has none of this dataset's 1 images"):
        label_stats(SMALL, ["z.jpg"], allow_missing=True)


@pytest.mark.parametrize(
    ("name", "loader"),
    [("real", "real.yaml"), ("multilabelfy", "multilabelfy.yaml")],
)
def test_real_label_files_against_independent_count(name: str, loader: str, tmp_path) -> None:
    # the copies timm and this package ship, which the label configs load
    raw = json.loads((REAL_JSON if name == "real" else MULTILABELFY_JSON).read_text())
    entries = raw if name == "real" else list(raw.values())
    expected = Counter(min(len(set(e)), 5) for e in entries)
    cfg = OmegaConf.create({"labels": OmegaConf.load(REPO / "conf" / "labels" / loader)})
    metrics = stats(cfg, output_dir=tmp_path)
    assert metrics[f"{name}/images"] == len(entries)
    assert metrics[f"{name}/empty"] == expected[0]
    for k in (1, 2, 3, 4):
        assert metrics[f"{name}/labels_{k}"] == expected[k]
    assert metrics[f"{name}/labels_5+"] == expected[5]
    multi = sum(n for k, n in expected.items() if k >= 2)
    assert metrics[f"{name}/multi_share"] == pytest.approx(multi / len(entries))
    assert metrics[f"{name}/multi_share_labeled"] == pytest.approx(
        multi / (len(entries) - expected[0])
    )
    saved = json.loads((tmp_path / "stats.json").read_text())
    assert saved[name]["name"] == name and len(saved[name]["top_pairs"]) == 10
    assert (tmp_path / "label_counts.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_table_and_plot_of_several_sets(tmp_path: Path) -> None:
    other = LabelSet("other", {"q.jpg": (3, 4)})
    table = render_table([label_stats(SMALL), label_stats(other)])
    lines = table.splitlines()
    assert lines[0].split() == ["small", "other"]
    assert lines[1].split() == ["images", "6", "1"]
    assert "multi-label, % of all" in table and "100.00%" in table
    assert "most frequent label pairs in other:" in table
    png = plot_label_counts([label_stats(SMALL), label_stats(other)], tmp_path / "p" / "c.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_stats_task_skips_none_and_needs_a_set(tmp_path: Path) -> None:
    user = tmp_path / "l.json"
    user.write_text(json.dumps({"a.jpg": [1, 2], "b.jpg": [3]}))
    nodes = [
        OmegaConf.load(REPO / "conf" / "labels" / "none.yaml"),
        {"_target_": "imagenet_multilabel.data.labels.sets.load_label_file", "path": str(user)},
    ]
    metrics = stats({"labels": nodes}, output_dir=tmp_path / "out")
    assert metrics["file/images"] == 2 and metrics["file/multi_share"] == 0.5
    assert (tmp_path / "out" / "label_stats.txt").read_text().startswith(" ")
    with pytest.raises(UserError, match=r"no label set to describe"):
        stats({"labels": nodes[:1]}, output_dir=tmp_path / "none")
