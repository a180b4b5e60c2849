"""``score`` under several label sets and operating points, for several runs: every
multi-label metric under each set, its range, the figure, the rankings' Kendall's tau and
swapped pairs on the images every set labels. The runs' files are given ImageNet val
names (there are no val photos here): this checks the mechanics, not a finding."""

from __future__ import annotations

import json
import random
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from imagenet_multilabel.data.labels.originals import original_labels
from imagenet_multilabel.data.labels.sets import load_real, load_tsipras
from imagenet_multilabel.reports.sensitivity import kendall_tau, swapped_pairs
from imagenet_multilabel.tasks.score import score
from tests.helpers import REPO, Predictions, command, tau_reference, write_run

POINTS = (0.5, 0.8, 0.95)


def test_kendall_tau_and_swaps_for_random_rankings() -> None:
    rng = random.Random(5)
    for _ in range(50):
        n = rng.randint(2, 7)
        a = [rng.choice([0.1, 0.2, 0.3, 0.4, 0.5]) for _ in range(n)]
        b = [rng.choice([0.1, 0.2, 0.3, 0.4, 0.5]) for _ in range(n)]
        if len(set(a)) < 2 or len(set(b)) < 2:
            assert np.isnan(kendall_tau(a, b)) or len(set(a)) > 1
            continue
        assert kendall_tau(a, b) == pytest.approx(tau_reference(a, b))
        runs = [f"m{i}" for i in range(n)]
        for lower in (False, True):
            swaps = swapped_pairs(runs, a, b, lower)
            sign = -1 if lower else 1
            expected = {
                frozenset((runs[i], runs[j]))
                for i, j in combinations(range(n), 2)
                if (a[i] - a[j]) * (b[i] - b[j]) < 0
            }
            assert {frozenset(p) for p in swaps} == expected
            for first, second in swaps:  # first ahead under the reference
                i, j = runs.index(first), runs.index(second)
                assert sign * (a[i] - a[j]) > 0


@pytest.fixture(scope="module")
def val_runs(tmp_path_factory) -> list[Path]:
    """Three made-up runs over 300 val images that ReaL rated and Tsipras annotated."""
    real = load_real()
    rated = {f"ILSVRC2012_val_{i:08d}.JPEG" for i in real.ratings.images.tolist()}
    files = sorted(set(load_tsipras().by_file) & rated)[:300]
    original = original_labels()
    target = np.array([original[f] for f in files])
    root = tmp_path_factory.mktemp("runs")
    rng = np.random.default_rng(0)
    loose = load_real(min_score=0.5).by_file  # read once (a read per image took minutes)
    runs = []
    for k, skill in enumerate((0.5, 1.5, 3.0)):
        logits = rng.normal(size=(len(files), 1000)).astype(np.float32)
        for i, f in enumerate(files):  # lean towards ReaL's labels at 0.5
            for c in loose[f] if k == 0 else real.by_file[f]:
                logits[i, c] += skill
        runs.append(
            write_run(
                root / f"m{k}", f"model{k}", {"val": Predictions(files, target, logits, None)}
            )
        )
    return runs


def _real_top1(run: Path, by_file: dict) -> float:
    """ReaL top-1 in percent, as metrics.json holds it."""
    data = np.load(run / "predictions" / "val.npz", allow_pickle=False)
    top = data["logits"].argmax(axis=1)
    names = [str(p).rsplit("/", 1)[-1] for p in data["path"]]
    hits = [top[i] in by_file[n] for i, n in enumerate(names) if by_file[n]]
    return 100 * float(np.mean(hits))


@pytest.mark.slow
def test_score_at_operating_points_of_three_runs(val_runs: list[Path], tmp_path: Path) -> None:
    overrides = [
        "run_dir=[" + ",".join(str(r) for r in val_runs) + "]",
        "labels=real",
        "labels.min_score=[" + ",".join(map(str, POINTS)) + "]",
        f"hydra.run.dir={tmp_path}",
    ]
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = compose("score", overrides=overrides, return_hydra_config=True)
    cfg.paths.output_dir = str(tmp_path)
    score(cfg)
    result = json.loads((tmp_path / "sensitivity.json").read_text())
    options = [f"real@{p:g}" for p in POINTS]
    assert result["options"] == options and result["runs"] == ["model0", "model1", "model2"]
    entry = result["metrics"]["val/real_top1"]
    sets = [load_real(min_score=p).by_file for p in POINTS]
    for run, name in zip(val_runs, result["runs"], strict=True):
        values = [_real_top1(run, by_file) for by_file in sets]
        assert [entry["values"][name][o] for o in options] == pytest.approx(values)
        assert entry["range"][name] == pytest.approx(max(values) - min(values))
    assert "val/top1" not in result["metrics"]  # single-label metrics do not move
    ranking = result["rankings"]["val/real_top1"]
    for o in options[1:]:
        ref, other = ranking["scores"][options[0]], ranking["scores"][o]
        assert ranking["tau"][o] == pytest.approx(tau_reference(ref, other))
    md = (tmp_path / "sensitivity.md").read_text()
    assert "## val/real_top1" in md and "Kendall's tau" in md
    assert (tmp_path / "sensitivity.png").read_bytes()[:4] == b"\x89PNG"
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["val/real_top1"] == pytest.approx(entry["values"]["model0"][options[0]])


@pytest.mark.slow
def test_score_cli_real_against_tsipras_on_common_images(
    val_runs: list[Path], tmp_path: Path
) -> None:
    """``labels=[real,tsipras]`` from the command line: each set composed on its own; the
    rankings use the images both label."""
    proc = command(
        "score",
        "run_dir=[" + ",".join(str(r) for r in val_runs[:2]) + "]",
        "labels=[real,tsipras]",
        "labels.allow_missing=true",
        f"hydra.run.dir={tmp_path}",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "sensitivity.json").read_text())
    assert result["options"] == ["real", "tsipras"]
    data = np.load(val_runs[0] / "predictions" / "val.npz", allow_pickle=False)
    names = [str(p).rsplit("/", 1)[-1] for p in data["path"]]
    real, tsipras = load_real().by_file, load_tsipras().by_file
    both = sum(1 for n in names if real[n] and tsipras[n])
    assert result["common_images"]["model0"]["val"] == both
    assert "val/main_top1" in result["metrics"]  # Tsipras's main object, scored
    assert result["metrics"]["val/main_top1"]["values"]["model0"]["real"] is None
    assert set(result["rankings"]["val/real_top1"]["tau"]) == {"tsipras"}
