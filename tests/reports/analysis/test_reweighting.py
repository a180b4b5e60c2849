"""The gap decomposition, on hand-computed numbers, and its task on run folders."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from imagenet_multilabel.core.errors import DataError, UserError
from imagenet_multilabel.reports.analysis.reweighting import explain_gap
from imagenet_multilabel.tasks.gap import gap


def run_metrics(counts, top1, asma=None) -> dict[str, float]:
    m = {}
    for g, n, acc in zip(("1", "2", "3", "4+"), counts, top1, strict=True):
        m[f"num_images@labels={g}"] = n
        for metric in ("top1", "real_top1", "vartopk_strict"):
            m[f"{metric}@labels={g}"] = acc if n else math.nan
    if asma is not None:
        m["asma"] = asma
    return m


A = run_metrics((80, 20, 0, 0), (80.0, 50.0, 0, 0), asma=65.0)
B = run_metrics((50, 50, 0, 0), (70.0, 40.0, 0, 0), asma=55.0)


def test_hand_computed_decomposition() -> None:
    rows = {r.metric: r for r in explain_gap(A, B)}
    top1 = rows["top1"]
    # A = .8*80 + .2*50 = 74; B = .5*70 + .5*40 = 55; A reweighted = .5*80 + .5*50 = 65
    assert top1.a == pytest.approx(74) and top1.b == pytest.approx(55)
    assert top1.a_reweighted == pytest.approx(65)
    assert top1.gap == pytest.approx(-19)
    assert top1.explained == pytest.approx(-9) and top1.residual == pytest.approx(-10)
    assert top1.explained_share == pytest.approx(9 / 19)
    assert rows["asma"].gap == pytest.approx(-10) and rows["asma"].explained is None


def test_missing_subgroup_cannot_be_reweighted() -> None:
    b = run_metrics((50, 25, 25, 0), (70.0, 40.0, 30.0, 0))
    with pytest.raises(DataError, match="has no images with 3 labels"):
        explain_gap(A, b)
    with pytest.raises(DataError, match="no label-count subgroups"):
        explain_gap({"top1": 70.0}, B)


def test_gap_task_on_runs(tmp_path: Path) -> None:
    for name, metrics in (
        ("a", {f"val/{k}": v for k, v in A.items()}),
        ("b", {f"v2/{k}": v for k, v in B.items()}),
    ):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps(metrics).replace("NaN", "null"))
    cfg = OmegaConf.create(
        {
            "a": str(tmp_path / "a"),
            "b": str(tmp_path / "b"),
            "paths": {"output_dir": str(tmp_path / "out")},
        }
    )
    flat = gap(cfg)
    assert flat["top1/gap"] == pytest.approx(-19)
    saved = json.loads((tmp_path / "out" / "gap.json").read_text())
    assert (
        saved["a"]["dataset"] == "val"
        and saved["b"]["dataset"] == "v2"
        and saved["rows"][0]["metric"] == "top1"
    )
    assert (
        "| top1 | 74.00 | 55.00 | -19.00 | 65.00 | -9.00 | -10.00 | 47.4% |"
        in (tmp_path / "out" / "gap.md").read_text()
    )
    assert (tmp_path / "out" / "gap.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(UserError, match="pass two finished runs"):
        gap(OmegaConf.create({"a": None, "b": None}))
