"""W&B offline: what a job and a sweep's leaderboard log, read back from the run files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from imagenet_multilabel.core.errors import DataError
from imagenet_multilabel.runs.image_sets import IMAGE_SET_KEYS
from imagenet_multilabel.tasks.evaluate import evaluate
from imagenet_multilabel.tracking.logger import PER_IMAGE_COLUMNS, log_leaderboard
from tests.helpers import DEMO_CLASSES, make_wnid_folders
from tests.tracking.wandb_records import OfflineRun


@pytest.fixture
def offline(tmp_path: Path, monkeypatch) -> Path:
    for var in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb-home" / var.lower()))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    return tmp_path


def offline_run(folder: Path) -> OfflineRun:
    (run,) = (folder / "wandb").glob("offline-run-*")
    return OfflineRun(run)


@pytest.mark.slow
def test_a_job_logs_config_metrics_tables_and_plots(compose_cfg, offline) -> None:
    cfg = compose_cfg(
        "model=test_tiny",
        "data=patchml",
        "data.num_images=6",
        "batch_size=3",
        "logger=wandb",
        "logger.wandb.per_image=4",
    )
    metrics = evaluate(cfg)
    out = Path(cfg.paths.output_dir)
    run = offline_run(out)
    assert run.run.project == "imagenet-multilabel" and run.exit_code == 0
    assert run.config["model"]["name"] == "test_efficientnet"  # the resolved config
    assert run.config["data"]["num_images"] == 6 and run.config["batch_size"] == 3
    assert run.config["run"]["preprocessing"]["input_size"] == [3, 160, 160]  # run.json

    logged = run.logged
    # every finite metric (which images were counted is no metric: runs/image_sets.py)
    finite = {k: v for k, v in metrics.items() if v == v and k.split("/")[-1] not in IMAGE_SET_KEYS}
    assert {k: logged[k] for k in finite} == pytest.approx(finite)  # every metric ...
    empty = [k for k, v in metrics.items() if v != v]
    assert "patchml/top1@labels=1" in empty and not set(empty) & set(logged)  # ... but NaNs

    subgroups = run.media("subgroups")
    assert subgroups["columns"] == [
        "dataset",
        "labels",
        "images",
        "top1",
        "real_top1",
        "vartopk_strict",
    ]
    by_group = {row[1]: row for row in subgroups["data"]}
    assert by_group["1"] == ["patchml", "1", 0, None, None, None]
    assert by_group["2"][2] == 6
    assert by_group["2"][5] == pytest.approx(metrics["patchml/vartopk_strict@labels=2"])

    table = run.media("per_image")
    assert table["columns"] == list(PER_IMAGE_COLUMNS) and len(table["data"]) == 4
    row = dict(zip(table["columns"], table["data"][0], strict=True))
    assert row["image"]["_type"] == "image-file" and row["file"].count("+") == 1
    assert len(row["valid_labels"].split(", ")) == 2 and len(row["top5"].split("\n")) == 5
    assert row["wrong_top1_is_valid"] in (True, False)
    images = [e for e in run.artifact("-per_image").manifest.contents if e.path.endswith(".png")]
    assert len(images) == 4 and all(Path(e.local_path).stat().st_size > 100 for e in images)
    plot = run.media("plots/label_counts")
    assert plot.is_file() and plot.suffix == ".png"
    assert (out / "figures" / "label_counts.png").is_file()


@pytest.mark.slow
def test_a_failing_job_still_finishes_its_run(compose_cfg, offline, tmp_path: Path) -> None:
    root = make_wnid_folders(tmp_path / "val", DEMO_CLASSES[:4])
    sorted(root.glob("*/*.JPEG"))[2].write_bytes(b"not a jpeg")
    cfg = compose_cfg("model=test_tiny", "data=folder", f"data.root={root}", "logger=wandb")
    with pytest.raises(DataError, match="cannot decode image"):
        evaluate(cfg)
    run = offline_run(Path(cfg.paths.output_dir))
    assert run.exit_code == 1


def test_the_leaderboard_run(offline, tmp_path: Path) -> None:
    png = tmp_path / "figures" / "benchmarks.png"
    png.parent.mkdir()
    from PIL import Image

    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(png)
    records = [
        {"rank": 1, "model": "a", "demo/top1": 70.0, "demo/ece": float("nan"), "status": "done"},
        {
            "rank": None,
            "model": "b",
            "demo/top1": float("nan"),
            "demo/ece": float("nan"),
            "status": "failed",
        },
    ]
    log_leaderboard(records, [png], project="p", group="sweep-1", folder=tmp_path)
    run = offline_run(tmp_path)
    assert run.run.run_group == "sweep-1" and run.run.job_type == "leaderboard"
    table = run.media("leaderboard")
    assert table["columns"] == ["rank", "model", "demo/top1", "demo/ece", "status"]
    assert table["data"] == [[1, "a", 70.0, None, "done"], [None, "b", None, None, "failed"]]
    assert run.media("figures/benchmarks").suffix == ".png"
    shutil.rmtree(tmp_path / "wandb")
