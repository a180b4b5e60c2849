"""``report <sweep> --labels ...``: the sweep's finished runs scored under several label
sets and operating points, as ``score`` does, written beside the leaderboard. The runs are
made up (saved predictions over val images that ReaL rated and Tsipras annotated, no
model): this checks the mechanics, not a finding."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from imagenet_multilabel.commands.report import main
from imagenet_multilabel.data.labels.originals import original_labels
from imagenet_multilabel.data.labels.sets import load_real, load_tsipras
from imagenet_multilabel.reports.leaderboard import gather
from tests.helpers import Predictions, tau_reference, write_failed, write_run

POINTS = (0.5, 0.8, 0.95)
IMAGES = 120


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """A sweep folder: three finished runs of made-up models of growing skill (logits
    leaning towards ReaL's labels at 0.5 for the first, at 0.8 for the others) and a
    failed job."""
    real = load_real()
    loose = load_real(min_score=0.5).by_file
    rated = {f"ILSVRC2012_val_{i:08d}.JPEG" for i in real.ratings.images.tolist()}
    files = sorted(set(load_tsipras().by_file) & rated)[:IMAGES]
    original = original_labels()
    target = np.array([original[f] for f in files])
    root = tmp_path_factory.mktemp("sweep")
    rng = np.random.default_rng(1)
    for k, skill in enumerate((0.5, 1.5, 3.0)):
        logits = rng.normal(size=(len(files), 1000)).astype(np.float32)
        for i, f in enumerate(files):
            logits[i, list(loose[f] if k == 0 else real.by_file[f])] += skill
        predictions = Predictions(files, target, logits, None)
        write_run(root / f"model=model{k}", f"model{k}", {"val": predictions})
    write_failed(root / "model=broken", "broken", ["val"], "out of memory")
    return root


def _real_top1(run: Path, by_file: dict) -> float:
    """ReaL top-1 in percent over the images with a label, from the saved logits."""
    data = np.load(run / "predictions" / "val.npz", allow_pickle=False)
    top = data["logits"].argmax(axis=1)
    names = [str(p).rsplit("/", 1)[-1] for p in data["path"]]
    return 100 * float(np.mean([top[i] in by_file[n] for i, n in enumerate(names) if by_file[n]]))


def test_report_scores_the_sweep_at_operating_points(sweep: Path, capsys) -> None:
    points = "labels.min_score=[" + ",".join(map(str, POINTS)) + "]"
    assert main([str(sweep), "--no-figures", "--labels", "real", points]) == 0
    printed = capsys.readouterr().out
    assert "# Sensitivity to the label set" in printed and "sensitivity.json" in printed
    result = json.loads((sweep / "sensitivity.json").read_text())
    options = [f"real@{p:g}" for p in POINTS]
    assert result["options"] == options
    assert result["runs"] == ["model0", "model1", "model2"]  # the failed job left out
    entry = result["metrics"]["val/real_top1"]
    sets = [load_real(min_score=p).by_file for p in POINTS]
    for k, name in enumerate(result["runs"]):
        values = [_real_top1(sweep / f"model=model{k}", s) for s in sets]
        assert [entry["values"][name][o] for o in options] == pytest.approx(values)
        assert entry["range"][name] == pytest.approx(max(values) - min(values))
    ranking = result["rankings"]["val/real_top1"]
    for o in options[1:]:
        reference, other = ranking["scores"][options[0]], ranking["scores"][o]
        assert ranking["tau"][o] == pytest.approx(tau_reference(reference, other))
    assert "Kendall's tau" in (sweep / "sensitivity.md").read_text()
    assert (sweep / "sensitivity.png").read_bytes()[:4] == b"\x89PNG"
    assert (sweep / "leaderboard.md").is_file()
    # no metrics.json beside the leaderboard: the sweep folder stays a sweep of 4 jobs
    assert not (sweep / "metrics.json").exists()
    assert len(gather([sweep]).jobs) == 4


def test_report_compares_real_and_tsipras_on_common_images(sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "board"
    words = ["real", "tsipras", "labels.allow_missing=true"]
    assert main([str(sweep), "--out", str(out), "--no-figures", "--labels", *words]) == 0
    result = json.loads((out / "sensitivity.json").read_text())
    assert result["options"] == ["real", "tsipras"]
    real, tsipras = load_real().by_file, load_tsipras().by_file
    data = np.load(sweep / "model=model0" / "predictions" / "val.npz", allow_pickle=False)
    names = [str(p).rsplit("/", 1)[-1] for p in data["path"]]
    both = sum(1 for n in names if real[n] and tsipras[n])
    assert result["common_images"]["model0"]["val"] == both
    assert "val/main_top1" in result["metrics"]
    assert set(result["rankings"]["val/real_top1"]["tau"]) == {"tsipras"}


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["nosuch"], "--labels nosuch: .*nosuch"),
        (["real", "min_score=0.5"], "give names of conf/labels options and labels.<key>"),
        (["labels.min_score=0.5"], "give names of conf/labels options"),
    ],
)
def test_bad_labels_are_one_line(sweep: Path, tmp_path: Path, capsys, words, message) -> None:
    out = tmp_path / "board"
    assert main([str(sweep), "--out", str(out), "--no-figures", "--labels", *words]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert re.search(message, err), err
    assert not (out / "sensitivity.json").exists()
