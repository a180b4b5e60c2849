"""Reviewers' exports merged (min_agree, agreement, Cohen's kappa against a hand count),
the model-made set, and the origin every label file records: read by labels=file, shown in
run.json's record and the leaderboard, never mixed silently."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from imagenet_multilabel.core.errors import DataError, UserError
from imagenet_multilabel.core.files import read_json, write_json
from imagenet_multilabel.data.labels.sets import resolve_labels
from imagenet_multilabel.propose.proposals import read_proposals
from imagenet_multilabel.propose.workflow import auto, merge, propose
from imagenet_multilabel.reports.leaderboard import gather
from tests.helpers import class_of, demo_photos
from tests.propose.hand_built import make_runs, run_propose

A, B, C = 501, 502, 503


@pytest.fixture
def proposals(tmp_path: Path) -> Path:
    """4 demo photos; candidates per image: its original label, A, B (top-3 of each)."""
    rows = [{A: 0.3, B: 0.2, class_of(f): 0.4} for f in demo_photos()[:4]]
    runs = make_runs(tmp_path, [rows, rows])
    return propose([str(r) for r in runs], out=str(tmp_path / "p"), top_k=3)


def export(path: Path, labels: dict, proposals: Path, made_for: str | None = None) -> Path:
    props = read_proposals(proposals)
    record = {"kind": "reviewed", "reviewers": 1, "proposals": made_for or props.hash}
    write_json(path, {**labels, "_origin": record})
    return path


def test_merge_keeps_classes_min_agree_reviewers_kept(proposals: Path, tmp_path: Path) -> None:
    f = demo_photos()[:4]
    t = [class_of(x) for x in f]
    one = export(
        tmp_path / "one.json", {f[0]: [t[0]], f[1]: [t[1], A], f[2]: [], f[3]: [B]}, proposals
    )
    two = export(
        tmp_path / "two.json", {f[0]: [t[0]], f[1]: [t[1]], f[2]: [], f[3]: [A]}, proposals
    )
    out = merge([str(one), str(two)], proposals=str(proposals), out=str(tmp_path / "m2.json"))
    merged = read_json(out)
    assert merged[f[0]] == [t[0]] and merged[f[1]] == [t[1]] and merged[f[2]] == []
    assert merged[f[3]] == []  # B and A: one reviewer each
    origin = merged["_origin"]
    assert origin["kind"] == "reviewed" and origin["reviewers"] == 2 and origin["min_agree"] == 2
    assert origin["identical_share"] == 0.5  # images 0 and 2
    # kappa over (image, class) decisions on the candidates {t_i, A, B}: 12 decisions,
    # one: kept t0, t1, A(1), B(3) = 4 yes; two: t0, t1, A(3) = 3 yes; they differ on
    # (1, A), (3, A), (3, B): agree on 9
    po = 9 / 12
    pe = (4 / 12) * (3 / 12) + (8 / 12) * (9 / 12)
    assert origin["cohen_kappa"] == pytest.approx((po - pe) / (1 - pe), abs=1e-6)
    union = merge(
        [str(one), str(two)], proposals=str(proposals), min_agree=1, out=str(tmp_path / "u.json")
    )
    assert read_json(union)[f[3]] == [A, B] and read_json(union)[f[1]] == sorted([t[1], A])
    page = (tmp_path / "m2_agreement.html").read_text()
    assert f[1] in page and f[3] in page and f[0] not in page.split("Disagreements")[-1]
    # the disagreements' photos: the review page's, found from where this page is
    sources = re.findall(r'<img alt="[^"]*" src="([^"]+)"', page)
    assert len(sources) == 2 and all((tmp_path / unquote(s)).is_file() for s in sources)


def test_merge_refuses_bad_exports(proposals: Path, tmp_path: Path) -> None:
    f = demo_photos()[:4]
    good = export(tmp_path / "good.json", {f[0]: [1]}, proposals)
    others = export(tmp_path / "others.json", {demo_photos()[9]: [1]}, proposals)
    unknown = export(tmp_path / "unknown.json", {f[0]: [1000]}, proposals)
    made = tmp_path / "made.json"
    write_json(made, {f[0]: [1], "_origin": {"kind": "model-made"}})
    stale = export(tmp_path / "stale.json", {f[0]: [1]}, proposals, "0123456789abcdef")
    for bad, says in (
        (others, "which these proposals do not hold"),
        (unknown, "unknown class 1000"),
        (made, "model-made"),
        (stale, "reviews other proposals"),
    ):
        with pytest.raises(DataError, match=says):
            merge([str(good), str(bad)], proposals=str(proposals), out=str(tmp_path / "x.json"))
        assert not (tmp_path / "x.json").exists()
    for missing in (tmp_path / "nope.json", tmp_path):  # the line names no option of labels=
        with pytest.raises(DataError, match="reviewer's export") as e:
            merge([str(good), str(missing)], proposals=str(proposals))
        assert "labels.path" not in str(e.value)
    taken = tmp_path / "taken.json"
    taken.write_text("keep me")
    again = export(tmp_path / "again.json", {f[0]: [1]}, proposals)
    with pytest.raises(UserError, match="nothing is overwritten"):
        merge([str(good), str(again)], proposals=str(proposals), out=str(taken))
    proc = run_propose("merge", str(good), str(unknown), f"proposals={proposals}", f"out={taken}")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert taken.read_text() == "keep me"


def test_model_made_set_and_origin_in_runs_and_leaderboard(proposals: Path, tmp_path: Path) -> None:
    f = demo_photos()[:4]
    out = auto(proposals=str(proposals), min_prob=0.25, out=str(tmp_path / "auto.json"))
    made = read_json(out)
    assert made[f[0]] == sorted([class_of(f[0]), A])  # 0.4 and 0.3 kept, B (0.2) not
    assert made["_origin"]["kind"] == "model-made"

    spec = {"_target_": "imagenet_multilabel.data.labels.sets.load_label_file", "name": "file"}
    got = resolve_labels({**spec, "path": str(out)}, f)
    assert got.info["label_origin"] == "model-made"
    one = export(tmp_path / "r1.json", {x: [class_of(x)] for x in f}, proposals)
    two = export(tmp_path / "r2.json", {x: [class_of(x)] for x in f}, proposals)
    merged = merge([str(one), str(two)], proposals=str(proposals), out=str(tmp_path / "m.json"))
    got = resolve_labels({**spec, "path": str(merged)}, f)
    assert got.info["label_origin"] == "reviewed by 2 people"
    assert got.valid.sum() == 4

    # two runs of the same dataset scored with each: the leaderboard shows both origins
    # and says that the columns do not compare
    runs = sorted(p.parent for p in tmp_path.glob("run*/run.json"))
    for run, origin in zip(runs, ("model-made", "reviewed by 2 people"), strict=True):
        info = json.loads((run / "run.json").read_text())
        info["datasets"]["demo"].update(labels="file", label_origin=origin)
        size = 224 if run.name == "run0" else 256  # two rows of the leaderboard
        info["preprocessing"] = {"input_size": [3, size, size], "crop_pct": 1.0}
        info["preprocessing"]["interpolation"] = "bicubic"
        write_json(run / "run.json", info)
    board = gather(runs)
    assert {r.label_origins for r in board.rows} == {
        "demo: file (model-made)",
        "demo: file (reviewed by 2 people)",
    }
    assert any("different origins" in n for n in board.notes)
    assert "| labels |" in board.to_markdown()
    assert "demo: file (model-made)" in board.to_markdown()
