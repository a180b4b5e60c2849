"""The ImageNet-testbed picture: logit fit, effective robustness, the wide table, and a real
multirun over the demo photos that writes them."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagenet_multilabel.reports.leaderboard import gather
from imagenet_multilabel.reports.plotting import row_names
from imagenet_multilabel.reports.testbed import (
    CLIP,
    build_testbed,
    effective_robustness,
    fit_logit,
    legend_entries,
)
from imagenet_multilabel.reports.write import write_report
from imagenet_multilabel.runs.rundir import RunDir
from tests.helpers import DEMO_PHOTOS, PP_LITE0, command, evaluate_py, write_run

VAL = {"class": "ImageNetValDataset", "labels": "real"}


def np_logit(percent) -> np.ndarray:
    """The test's own logit of clipped accuracies (%)."""
    p = np.clip(np.asarray(percent, dtype=float), CLIP, 100 - CLIP) / 100
    return np.log(p) - np.log1p(-p)


def np_predict(slope: float, intercept: float, reference) -> np.ndarray:
    return 100 * (1 / (1 + np.exp(-(slope * np_logit(reference) + intercept))))


def test_logit_fit_against_numpy_polyfit() -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(20, 95, size=9)
    y = np.clip(x - 25 + rng.normal(0, 6, size=9), 0, 100)
    x[0], y[1] = 100.0, 0.0  # clipped to 99.9 / 0.1 %
    fit = fit_logit(x, y)
    slope, intercept = np.polyfit(np_logit(x), np_logit(y), 1)
    assert fit is not None and fit.n == 9
    assert fit.slope == pytest.approx(slope, rel=1e-9)
    assert fit.intercept == pytest.approx(intercept, rel=1e-9, abs=1e-12)
    r = np.corrcoef(np_logit(x), np_logit(y))[0, 1]
    assert fit.r2 == pytest.approx(r**2, rel=1e-9)
    assert fit.predict(np.array([50.0, 80.0])) == pytest.approx(
        np_predict(slope, intercept, [50.0, 80.0])
    )
    # models without the variant are left out of the fit
    with_nan = fit_logit(np.append(x, 60.0), np.append(y, math.nan))
    assert with_nan is not None and with_nan.n == 9
    assert with_nan.slope == pytest.approx(slope)


def test_no_fit_below_three_models_or_one_reference_accuracy() -> None:
    assert fit_logit([60.0, 70.0], [50.0, 55.0]) is None
    assert fit_logit([60.0, 70.0, math.nan], [50.0, 55.0, 40.0]) is None
    assert fit_logit([60.0, 60.0, 60.0], [50.0, 55.0, 40.0]) is None
    assert np.isnan(effective_robustness(None, [60.0], [50.0])).all()


def _sweep(sweep: Path) -> dict[str, dict[str, dict[str, float]]]:
    """Four models on ImageNet val, a corrupted copy (top1, real_top1) and a variant that
    two models have (no fit)."""
    metrics = {}
    for i, name in enumerate(["m1", "m2", "m3", "m4"]):
        ref = {"top1": 60.0 + 7 * i, "real_top1": 66.0 + 6 * i}
        noisy = {"top1": 30.0 + 5 * i + (-1) ** i, "real_top1": 35.0 + 4 * i}
        metrics[name] = {"val": ref, "noisy": noisy}
        write_run(sweep / f"{name}-val", name, {"val": ref}, records={"val": VAL})
        write_run(sweep / f"{name}-noisy", name, {"noisy": noisy})
        if i < 2:
            metrics[name]["sketch"] = {"top1": 20.0 + i}
            write_run(sweep / f"{name}-sketch", name, {"sketch": metrics[name]["sketch"]})
    return metrics


def _csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open()))


def test_effective_robustness_in_the_wide_table(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    metrics = _sweep(sweep)
    board, written = write_report([sweep], sweep)
    figures = sweep / "figures"
    names = {p.name for p in written if p.parent == figures}
    assert {
        "testbed_top1.png",
        "variants_top1.md",
        "variants_top1.csv",
        "testbed_real_top1.png",
        "variants_real_top1.csv",
    } <= names
    assert not {"testbed_asma.png", "variants_asma.csv"} & names  # no run has asma
    for metric in ("top1", "real_top1"):
        rows = _csv(figures / f"variants_{metric}.csv")
        assert [r["model"] for r in rows] == ["m4", "m3", "m2", "m1"]  # the leaderboard's order
        x = [metrics[r["model"]]["val"][metric] for r in rows]
        y = [metrics[r["model"]]["noisy"][metric] for r in rows]
        slope, intercept = np.polyfit(np_logit(x), np_logit(y), 1)
        expected = np.array(y) - np_predict(slope, intercept, x)
        got = np.array([float(r["ER noisy"]) for r in rows])
        assert got == pytest.approx(expected, abs=1e-9)
        assert np.abs(got).max() > 0.1  # the points are off the line
        assert [float(r["val"]) for r in rows] == x and [float(r["noisy"]) for r in rows] == y
    top1 = _csv(figures / "variants_top1.csv")
    assert [r["sketch"] for r in top1] == ["", "", "21.0", "20.0"]
    assert all(r["ER sketch"] == "" for r in top1)  # two models: no line
    md = (figures / "variants_top1.md").read_text()
    fit = fit_logit(
        [metrics[m]["val"]["top1"] for m in metrics], [metrics[m]["noisy"]["top1"] for m in metrics]
    )
    assert f"| noisy | 4 | {fit.slope:.3f} | {fit.intercept:+.3f} | {fit.r2:.3f} |" in md
    assert "| sketch | 2 | no fit: 2 models (a line needs 3) |" in md
    assert not [n for n in board.notes if "testbed" in n]


def test_reference_chosen_or_missing_and_one_dataset(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    _sweep(sweep)
    write_report([sweep], sweep, reference="noisy")
    rows = _csv(sweep / "figures" / "variants_top1.csv")
    assert list(rows[0])[5:8] == ["noisy", "val", "sketch"]
    board, written = write_report([sweep], sweep, reference="imagenet")
    assert "no testbed figures: no run has the reference dataset 'imagenet'" in board.notes[-1]
    assert "leaderboard.md" in {p.name for p in written}

    single = tmp_path / "single"
    write_run(single / "a", "a", {"demo": {"top1": 50.0}})
    write_run(single / "b", "b", {"demo": {"top1": 60.0}})
    board, written = write_report([single], single)
    assert not [p for p in written if "testbed" in p.name or "variants" in p.name]
    assert not board.notes


def test_rows_of_one_model_are_named_by_their_preprocessing(tmp_path: Path) -> None:
    for size in (160, 224):
        pp = {**PP_LITE0, "input_size": [3, size, size]}
        write_run(tmp_path / f"r{size}", "lite0", {"demo": {"top1": size / 4}}, preprocessing=pp)
    write_run(tmp_path / "other", "other", {"demo": {"top1": 1.0}})
    assert row_names(gather([tmp_path]).rows) == ["lite0 224px", "lite0 160px", "other"]


def test_a_testbed_of_many_models_names_the_best_and_worst_ten(tmp_path: Path) -> None:
    """30 models: the legend names the 10 best and 10 worst on the reference and counts the
    others (drawn grey); the table keeps all 30. 20 models: all named."""
    top1 = {f"m{i:02d}": 40.0 + i for i in range(30)}  # m29 best
    for name, value in top1.items():
        write_run(tmp_path / name, name, {"val": {"top1": value}}, records={"val": VAL})
        write_run(tmp_path / f"{name}-v2", name, {"v2": {"top1": value - 10}})
    board, written = write_report([tmp_path], tmp_path)
    tb = build_testbed(board, "top1", "val")
    best = [f"m{i:02d}" for i in range(29, 19, -1)]
    worst = [f"m{i:02d}" for i in range(9, -1, -1)]
    assert list(legend_entries(tb)) == [*best, *worst, "10 other models"]
    assert legend_entries(tb)["10 other models"] == -1
    assert len(_csv(tmp_path / "figures" / "variants_top1.csv")) == 30
    assert (tmp_path / "figures" / "testbed_top1.png") in written

    few = tmp_path / "few"
    for name in list(top1)[:20]:
        write_run(few / name, name, {"val": {"top1": top1[name]}}, records={"val": VAL})
        write_run(few / f"{name}-v2", name, {"v2": {"top1": top1[name] - 10}})
    tb = build_testbed(write_report([few], few)[0], "top1", "val")
    assert list(legend_entries(tb)) == [f"m{i:02d}" for i in range(19, -1, -1)]


@pytest.mark.slow
def test_a_multirun_over_demo_photos_draws_the_testbed(tmp_path: Path) -> None:
    """A real multirun (tiny random model at three input sizes, each job on the demo photos
    and composites of them): the testbed files are written at its end, and the table holds
    the runs' metrics."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in DEMO_PHOTOS[:6]:
        (photos / path.name).symlink_to(path)
    sweep = tmp_path / "sweep"
    proc = evaluate_py(
        "-m",
        "model=test_tiny",
        "callbacks=none",
        "num_workers=0",
        "data=demo_suite",
        f"data.demo.root={photos}",
        f"data.patchml.base.root={photos}",
        "data.patchml.num_images=4",
        "preprocess.img_size=64,96,128",
        "hydra.callbacks.leaderboard.reference=patchml",
        f"hydra.sweep.dir={sweep}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    png = sweep / "figures" / "testbed_top1.png"
    assert png.is_file() and png.stat().st_size > 10_000
    with Image.open(png) as im:
        assert im.size[0] > 400 and im.size[1] > 300
    rows = _csv(sweep / "figures" / "variants_top1.csv")
    assert sorted(int(r["img_size"]) for r in rows) == [64, 96, 128]
    assert list(rows[0])[5:] == ["patchml", "demo", "ER demo"]
    runs = {}
    for job in sweep.glob("*/metrics.json"):
        run = RunDir(job.parent)
        runs[run.info["preprocessing"]["input_size"][-1]] = run.metrics
    assert sorted(runs) == [64, 96, 128]
    for row in rows:
        run = runs[int(row["img_size"])]
        assert float(row["patchml"]) == run["patchml"]["top1"]
        assert float(row["demo"]) == run["demo"]["top1"]
        assert run["demo"]["num_images"] == 6 and run["patchml"]["num_images"] == 4
    # the composites have valid-label sets, the demo photos do not: no real_top1 picture
    assert not (sweep / "figures" / "testbed_real_top1.png").exists()
    assert "Traceback" not in proc.stderr


def test_the_leaderboard_command_writes_them(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    _sweep(sweep)
    proc = command("report", str(sweep), "--reference", "val", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "figures/testbed_top1.png" in proc.stdout
    assert (sweep / "figures" / "variants_real_top1.md").is_file()


def test_imagenet_c_shown_as_the_mean_of_its_15_corruptions(tmp_path: Path) -> None:
    """Datasets named as data=imagenet_c names them, covering all 15 corruptions at two
    severities: one variant, each model's mean over the corruptions of its mean over the
    severities; a model without one corruption has none; the single datasets leave."""
    from imagenet_multilabel.data.datasets.corruptions import BENCHMARK
    from imagenet_multilabel.reports.testbed import IMAGENET_C_MEAN

    sweep = tmp_path / "sweep"
    want = {}
    for i, name in enumerate(["m1", "m2", "m3", "m4"]):
        ref = {"top1": 60.0 + 7 * i}
        write_run(sweep / f"{name}-val", name, {"val": ref}, records={"val": VAL})
        corrupted = {
            f"imagenet_c-{c}-{s}": {"top1": 20.0 + 5 * i + j + 3 * s - (-1) ** i}
            for j, c in enumerate(BENCHMARK)
            for s in (1, 5)
            if not (name == "m1" and c == "fog")
        }
        write_run(sweep / f"{name}-c", name, {**corrupted, "noisy": {"top1": 30.0 + i}})
        if name != "m1":
            per = [
                np.mean([corrupted[f"imagenet_c-{c}-{s}"]["top1"] for s in (1, 5)])
                for c in BENCHMARK
            ]
        want[name] = None if name == "m1" else float(np.mean(per))
    write_report([sweep], sweep)
    rows = _csv(sweep / "figures" / "variants_top1.csv")
    assert list(rows[0])[5:] == [
        "val",
        "noisy",
        IMAGENET_C_MEAN,
        "ER noisy",
        f"ER {IMAGENET_C_MEAN}",
    ]
    for r in rows:
        got = r[IMAGENET_C_MEAN]
        assert (
            (got == "")
            if want[r["model"]] is None
            else float(got) == pytest.approx(want[r["model"]])
        )
