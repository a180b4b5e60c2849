"""The paper's figures from a leaderboard: pair, label counts, gap decomposition."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from imagenet_multilabel.reports.analysis.reweighting import explain_gap
from imagenet_multilabel.reports.figures import run_figures
from imagenet_multilabel.reports.write import write_report
from tests.helpers import subgroup_metrics, write_run

VAL = {"class": "ImageNetValDataset", "labels": "real"}
V2 = {"class": "ImageNetV2Dataset", "variant": "matched-frequency", "labels": "multilabelfy"}
COUNTS_A = {"1": 60, "2": 25, "3": 10, "4+": 5}
COUNTS_B = {"1": 40, "2": 35, "3": 15, "4+": 10}


def _model(sweep: Path, name: str, shift: float, with_v2: bool = True) -> dict:
    acc = {"1": 80 + shift, "2": 70 + shift, "3": 60 + shift, "4+": 50 + shift}
    a = subgroup_metrics(COUNTS_A, acc, asma=65.0 + shift)
    write_run(sweep / f"{name}-val", name, {"imagenet": a}, records={"imagenet": VAL})
    b = subgroup_metrics(COUNTS_B, {g: v - 5 for g, v in acc.items()}, asma=60.0 + shift)
    if with_v2:
        write_run(sweep / f"{name}-v2", name, {"imagenetv2": b}, records={"imagenetv2": V2})
    write_run(sweep / f"{name}-demo", name, {"demo": {"top1": 50.0}})
    return {"a": a, "b": b}


def _image(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.size


def test_sweep_figures(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    m1 = _model(sweep, "m1", 0.0)
    _model(sweep, "m2", 3.0)
    _model(sweep, "m3", 1.0, with_v2=False)
    board, written = write_report([sweep], sweep)
    names = sorted(p.name for p in written if p.parent.name == "figures")
    testbed = [n for n in names if n.startswith(("testbed_", "variants_"))]
    assert testbed == sorted(  # imagenetv2 and demo against imagenet (test_testbed.py)
        f"{kind}_{metric}.{ext}"
        for metric in ("top1", "real_top1", "asma")
        for kind, ext in (("testbed", "png"), ("variants", "csv"), ("variants", "md"))
    )
    assert [n for n in names if n not in testbed] == [
        "benchmarks.png",
        "gap.md",
        "gap.png",
        "gap_m1.png",
        "gap_m2.png",
        "label_counts_imagenet.png",
        "label_counts_imagenetv2.png",
    ]
    assert all(_image(p)[0] > 300 for p in written if p.suffix == ".png")
    gap_md = (sweep / "figures" / "gap.md").read_text()
    rows = explain_gap(m1["a"], m1["b"], "imagenet", "imagenetv2")
    top1 = next(r for r in rows if r.metric == "top1")
    assert "## m1" in gap_md and "## m3" not in gap_md
    assert f"| top1 | {top1.a:.2f} | {top1.b:.2f} | {top1.gap:+.2f} |" in gap_md
    assert top1.explained < 0 and top1.residual == pytest.approx(-5.0)  # harder mix + 5 points
    assert not [n for n in board.notes if "gap" in n]


def test_figures_say_what_they_cannot_draw(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    acc = {"1": 80.0, "2": 70.0, "3": 60.0, "4+": 50.0}
    lacking = subgroup_metrics({"1": 10, "2": 5, "3": 0, "4+": 0}, acc)  # A lacks 3 and 4+
    write_run(sweep / "a", "m", {"imagenet": lacking}, records={"imagenet": VAL})
    write_run(
        sweep / "b",
        "m",
        {"imagenetv2": subgroup_metrics(COUNTS_B, acc)},
        records={"imagenetv2": V2},
    )
    board, written = write_report([sweep], sweep)
    assert any("gap of m: imagenet has no images with 3 labels" in n for n in board.notes)
    assert "gap of m" in (sweep / "leaderboard.md").read_text()
    assert "benchmarks.png" in {p.name for p in written}


def test_one_runs_figures(tmp_path: Path) -> None:
    acc = {"1": 80.0, "2": 70.0, "3": 60.0, "4+": 50.0}
    metrics = {
        "imagenet": subgroup_metrics(COUNTS_A, acc),
        "imagenetv2": subgroup_metrics(COUNTS_B, acc),
        "demo": {"top1": 1.0},
    }
    files = run_figures(metrics, tmp_path, "m")
    assert [p.name for p in files] == ["label_counts.png", "gap.png"]
    assert run_figures({"demo": {"top1": 1.0}}, tmp_path / "none", "m") == []
