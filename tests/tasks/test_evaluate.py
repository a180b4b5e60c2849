"""evaluate end to end: real timm models, real photos, real Trainer, Hydra composition."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import timm
import torch

from imagenet_multilabel.runs.rundir import RunDir, read_predictions
from imagenet_multilabel.scoring.metrics.catalog import family
from imagenet_multilabel.scoring.metrics.single import single_label_metrics
from imagenet_multilabel.tasks.evaluate import evaluate
from tests.helpers import dataset_metrics, error_line, evaluate_py, make_wnid_folders


def test_tiny_model_on_wnid_folders(compose_cfg, wnid_folder: Path) -> None:
    cfg = compose_cfg("model=test_tiny", "data=folder", f"data.root={wnid_folder}", "batch_size=5")
    flat = evaluate(cfg)
    out = Path(cfg.paths.output_dir)
    assert json.loads((out / "metrics.json").read_text()) == pytest.approx(flat)
    assert set(flat) == {
        f"folder/{k}" for k in ["num_images", *(m.name for m in family("single"))]
    } | {
        "folder/num_distinct_images",
        "folder/images_sha256",  # which images it counted: no metric (RunDir keeps it apart)
    }
    metrics = RunDir(out).metrics["folder"]
    assert metrics["num_images"] == 13 == RunDir(out).image_sets["folder"]["num_distinct_images"]

    preds = read_predictions(out / "predictions" / "folder.npz")
    assert preds["logits"].shape == (13, 1000) and preds["logits"].dtype == np.float32
    assert list(preds["path"]) == sorted(
        p.relative_to(wnid_folder).as_posix() for p in wnid_folder.glob("*/*.JPEG")
    )
    recomputed = single_label_metrics(
        torch.from_numpy(preds["logits"]), torch.from_numpy(preds["target"])
    )
    assert recomputed == {k: metrics[k] for k in recomputed}

    run = json.loads((out / "run.json").read_text())
    # counted here on a timm model built independently of the package
    num_params = sum(p.numel() for p in timm.create_model("test_efficientnet").parameters())
    assert run["model"] == {
        "name": "test_efficientnet",
        "weights": "none",
        "num_params": num_params,
    }
    assert run["preprocessing"]["input_size"] == [3, 160, 160]
    assert run["datasets"]["folder"]["num_images"] == 13
    assert run["images_per_second"] > 0 and run["versions"]["timm"]


def test_a_folder_of_one_image(compose_cfg, tmp_path: Path) -> None:
    """One image: every metric is computed (the buffer's (1,) target is not squeezed)."""
    root = make_wnid_folders(tmp_path / "one", [83])
    cfg = compose_cfg("model=test_tiny", "data=folder", f"data.root={root}")
    flat = evaluate(cfg)
    metrics = RunDir(Path(cfg.paths.output_dir)).metrics["folder"]
    assert metrics == pytest.approx(dataset_metrics(flat, "folder"))
    assert metrics["num_images"] == 1 and metrics["top1"] in (0.0, 100.0)
    assert read_predictions(Path(cfg.paths.output_dir) / "predictions" / "folder.npz")[
        "logits"
    ].shape == (1, 1000)


def test_preprocessing_overrides_are_applied_and_recorded(compose_cfg, wnid_folder) -> None:
    cfg = compose_cfg(
        "model=test_tiny",
        "data=folder",
        f"data.root={wnid_folder}",
        "preprocess.img_size=96",
        "preprocess.crop_pct=1.0",
        "preprocess.interpolation=bilinear",
        "preprocess.mean=[0.5,0.5,0.5]",
        "preprocess.std=[0.25,0.25,0.25]",
    )
    evaluate(cfg)
    run = json.loads((Path(cfg.paths.output_dir) / "run.json").read_text())
    assert run["preprocessing"] == {
        "input_size": [3, 96, 96],
        "interpolation": "bilinear",
        "crop_pct": 1.0,
        "crop_mode": "center",
        "mean": [0.5, 0.5, 0.5],
        "std": [0.25, 0.25, 0.25],
        "use_test_size": True,
        "hflip": False,
    }


@pytest.mark.slow
def test_default_model_on_demo_photos_and_composites(compose_cfg) -> None:
    cfg = compose_cfg()
    metrics = evaluate(cfg)
    # tf_efficientnet_lite0 with the package's ImageNet weights (timm: 74.8% on val)
    assert metrics["demo/num_images"] == 100
    assert metrics["demo/top1"] == pytest.approx(88.0)
    assert metrics["demo/top5"] == pytest.approx(98.0)
    assert "demo/real_top1" not in metrics  # no label set for single photos
    # 50 two-photo composites: labels known by construction
    assert metrics["patchml/num_images"] == 50 == metrics["patchml/num_images@labels=2"]
    assert metrics["patchml/vartopk_strict"] == pytest.approx(38.0)
    assert metrics["patchml/vartopk_partial"] == pytest.approx(69.0)


@pytest.mark.slow
def test_cli_writes_run_dir(tmp_path: Path, wnid_folder: Path) -> None:
    proc = evaluate_py(
        "model=test_tiny",
        "data=folder",
        f"data.root={wnid_folder}",
        f"hydra.run.dir={tmp_path / 'run'}",
        "num_workers=1",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = tmp_path / "run"
    assert {p.name for p in run_dir.iterdir()} >= {
        "metrics.json",
        "run.json",
        "predictions",
        ".hydra",
        "evaluate.log",
    }
    assert "top1" in proc.stdout and "folder" in proc.stdout
    assert json.loads((run_dir / "metrics.json").read_text())["folder/num_images"] == 13


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["data=folder"], "no dataset folder given: pass data.root=... (a folder of wnid"),
        (["data=folder", "data.root=/nonexistent/val"], "/nonexistent/val does not exist"),
        (["model.name=resnet5"], "unknown timm model 'resnet5'; close matches"),
        (["model=resnet50"], "no pretrained weights for 'resnet50.a1_in1k'"),
    ],
)
def test_cli_bad_input_is_one_line_and_writes_no_metrics(tmp_path, args, expected) -> None:
    proc = evaluate_py(*args, f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 2
    assert expected in error_line(proc)
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.slow
def test_cli_corrupt_image_in_worker(tmp_path: Path, wnid_folder: Path) -> None:
    bad = sorted(wnid_folder.glob("*/*.JPEG"))[5]
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    proc = evaluate_py(
        "model=test_tiny",
        "data=folder",
        f"data.root={wnid_folder}",
        f"hydra.run.dir={tmp_path / 'run'}",
        "num_workers=2",
    )
    assert proc.returncode == 2
    line = error_line(proc)
    assert line.startswith("error: cannot decode image") and bad.name in line
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.slow
def test_csv_and_wandb_loggers_offline(compose_cfg, wnid_folder: Path) -> None:
    cfg = compose_cfg(
        "model=test_tiny", "data=folder", f"data.root={wnid_folder}", "logger=[csv,wandb]"
    )
    metrics = evaluate(cfg)
    out = Path(cfg.paths.output_dir)
    header, row = (out / "csv" / "metrics.csv").read_text().splitlines()[:2]
    logged = dict(zip(header.split(","), row.split(","), strict=True))
    assert float(logged["folder/top1"]) == metrics["folder/top1"]
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].glob("*.wandb"))
