"""A sweep job decides from its folder: skip, recompute from predictions, or run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from imagenet_multilabel.builders import build_scorer
from imagenet_multilabel.core.files import read_json, write_json
from imagenet_multilabel.runs.rundir import RunDir, write_predictions
from imagenet_multilabel.scoring.metrics.names import flatten_metrics
from imagenet_multilabel.sweeps.job import evaluate_job, rescore, start
from imagenet_multilabel.sweeps.planning import data_fingerprints, identity, plan
from imagenet_multilabel.tasks.evaluate import evaluate
from tests.helpers import REPO


def _fake_predictions(job: Path, dataset: str, n: int = 3) -> None:
    write_predictions(
        job / "predictions" / f"{dataset}.npz",
        index=np.arange(n),
        files=[f"n01440764_{i}.JPEG" for i in range(n)],
        target=np.zeros(n, dtype=np.int64),
        logits=np.zeros((n, 1000), dtype=np.float32),
    )


def _finish(job: Path, cfg, metrics: dict) -> None:
    """run.json recording the data as it is now (what evaluate writes), then metrics.json."""
    data = data_fingerprints(cfg)
    write_json(job / "run.json", {"datasets": {n: {"fingerprint": fp} for n, fp in data.items()}})
    write_json(job / "metrics.json", flatten_metrics(metrics))


def test_plan_from_what_the_folder_holds(compose_cfg) -> None:
    cfg = compose_cfg("model=test_tiny", "data=demo")
    job = Path(cfg.paths.output_dir)
    assert (plan(job, cfg).action, plan(job, cfg).reason) == ("run", "new job")
    _fake_predictions(job, "stale")  # of an earlier configuration: gone when it starts
    start(job, cfg)
    assert not (job / "predictions").exists()
    assert plan(job, cfg).reason == "incomplete results (the job was stopped)"
    single = set(build_scorer(cfg.head).metric_names(False))
    assert {"num_images", "top1", "top5", "nll", "ece"} <= single
    _finish(job, cfg, {"demo": dict.fromkeys(single, 1.0)})
    assert plan(job, cfg).action == "skip"
    _finish(job, cfg, {"demo": {"top1": 1.0}})
    grown = plan(job, cfg)
    assert grown.action == "rescore" and grown.source == job
    assert grown.reason.startswith(
        f"the metric set has grown ({len(single) - 1} new, e.g. demo/ece)"
    )

    other_heads = compose_cfg("model=test_tiny", "data=demo", "head.single.ece_bins=10")
    assert plan(job, other_heads) == plan(job, other_heads).__class__(
        "rescore", "the heads changed", job
    )
    assert identity(other_heads) == identity(cfg)
    for override, key in (("batch_size=8", "batch_size"), ("cpu_threads=1", "cpu_threads")):
        changed = plan(job, compose_cfg("model=test_tiny", "data=demo", override))
        assert changed.action == "run" and f"differs in {key}" in changed.reason
    same = compose_cfg("model=test_tiny", "data=demo", "logger=none", "data.cache=/tmp/c")
    assert identity(same) == identity(cfg)


def test_a_new_job_reuses_the_predictions_of_a_finished_one(compose_cfg) -> None:
    cfg = compose_cfg("model=test_tiny", "data=demo")
    job = Path(cfg.paths.output_dir)
    start(job, cfg)
    _fake_predictions(job, "demo")
    _finish(job, cfg, {"demo": {"top1": 1.0}})
    other = compose_cfg("model=test_tiny", "data=demo", "head.single.ece_bins=10")
    other_job = Path(other.paths.output_dir)
    assert other_job.parent == job.parent
    reuse = plan(other_job, other)
    assert reuse.action == "rescore" and reuse.source == job
    assert reuse.reason == f"new job; predictions of the same run in {job.name}"
    assert plan(other_job, compose_cfg("model=test_tiny", "data=demo", "seed=1")).action == "run"


@pytest.mark.slow
def test_rescore_recomputes_from_predictions(compose_cfg) -> None:
    """A job evaluated with the single-label head only, then asked for the default heads:
    its metrics are recomputed from its predictions (with the label set stored there)."""
    args = ("model=test_tiny", "data=patchml", "data.num_images=6", "batch_size=3")
    cfg = compose_cfg(*args, "head=single")
    job = Path(cfg.paths.output_dir)
    start(job, cfg)
    first = evaluate(cfg)
    fresh = evaluate(compose_cfg(*args, "head=default"))  # what rescoring must give
    other = compose_cfg(*args, "head=default")
    assert plan(job, other).reason == "the heads changed"
    metrics = rescore(job, other)
    assert json.dumps(metrics) == json.dumps(fresh)  # every value (NaN of empty subgroups too)
    assert "patchml/vartopk_strict" not in first
    assert RunDir(job).metrics["patchml"]["vartopk_strict"] == fresh["patchml/vartopk_strict"]
    assert set(read_json(job / "job.json")["head"]) == {"single", "multilabel"}
    info = RunDir(job).info
    assert info["heads"] == ["single", "multilabel"] and "rescored" in info
    assert not (job / ".rescore").exists()
    assert plan(job, other).action == "skip"
    # another folder of the sweep: the predictions are linked in, then scored
    new = compose_cfg(*args, "head=default", "head.single.ece_bins=4")
    new_job = Path(new.paths.output_dir)
    assert rescore(new_job, new, job)["patchml/top1"] == first["patchml/top1"]
    assert RunDir(new_job).info["predictions_from"] == str(job)
    assert (new_job / "predictions" / "patchml.npz").stat().st_ino == (
        job / "predictions" / "patchml.npz"
    ).stat().st_ino
    assert plan(new_job, new).action == "skip"


def test_a_job_whose_photos_or_labels_changed_runs_again(compose_cfg, tmp_path: Path) -> None:
    """The data a job read is part of its identity: photos added or replaced under the
    same name, or its label file edited, and the finished job runs again."""
    import shutil

    demo = sorted((REPO / "src").glob("**/assets/demo/*.JPEG"))
    root = tmp_path / "photos"
    root.mkdir()
    for path in demo[:3]:
        shutil.copy(path, root / path.name)
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({p.name: [p.name.split("_")[0]] for p in demo[:4]}))
    args = ("model=test_tiny", "data=demo", f"data.root={root}", "labels=file")
    cfg = compose_cfg(*args, f"labels.path={labels}")
    job = Path(cfg.paths.output_dir)
    multi = set(build_scorer(cfg.head).metric_names(True))
    start(job, cfg)
    _finish(job, cfg, {"demo": dict.fromkeys(multi, 1.0)})
    assert plan(job, cfg).action == "skip"
    shutil.copy(demo[3], root / demo[3].name)
    changed = plan(job, cfg)
    assert (changed.action, changed.reason) == (
        "run",
        "the data changed since it was read (demo: 3 -> 4 images)",
    )
    (root / demo[3].name).unlink()
    assert plan(job, cfg).action == "skip"
    shutil.copy(demo[3], root / demo[0].name)  # another photo under the same name
    assert plan(job, cfg).reason.endswith("(demo: images replaced or modified)")
    shutil.copy(demo[0], root / demo[0].name)
    start(job, cfg)
    _finish(job, cfg, {"demo": dict.fromkeys(multi, 1.0)})
    labels.write_text(json.dumps({p.name: [p.name.split("_")[0], 1] for p in demo[:4]}))
    assert plan(job, cfg).reason.endswith("(demo: label file changed)")


def test_a_job_checks_its_settings_and_a_bad_one_is_a_failed_job(compose_cfg, capsys) -> None:
    """A single run's settings are checked by run_task before the task; a job of a multirun
    checks them itself (once), so that a bad one is recorded and the sweep goes on."""
    cfg = compose_cfg("model=test_tiny", "data=demo")
    cfg.seed = -1
    job = Path(cfg.paths.output_dir)
    assert evaluate_job(cfg) == {}
    reason = read_json(job / "failed.json")["error"]
    assert reason.startswith("seed=-1 is not valid: give a whole number in 0..4294967295")
    assert f"error: job {job.name} failed: seed=-1" in capsys.readouterr().err
    assert not (job / "metrics.json").exists() and not (job / "predictions").exists()
