"""evaluate with real label sets joined to datasets in the real layouts, then re-scoring
the saved predictions with other label sets (score). The label files are the copies that
timm (ReaL) and this package (Multilabelfy) ship."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from imagenet_multilabel.core.classes import wnids
from imagenet_multilabel.core.errors import DataError, UserError
from imagenet_multilabel.runs.rundir import RunDir, read_predictions
from imagenet_multilabel.scoring.metrics.catalog import family
from imagenet_multilabel.tasks.evaluate import evaluate
from imagenet_multilabel.tasks.score import score
from tests.helpers import (
    DEMO_CLASSES,
    MULTILABELFY_JSON,
    REAL_JSON,
    dataset_metrics,
    photo,
    read_label_json,
    run_metrics,
)
from tests.scoring.metrics.np_reference import multilabel as reference_multilabel

# image number -> original class of a small flat ILSVRC2012 val subset (ReaL: [] for 1)
VAL = {1: 65, 2: 970, 3: 230, 4: 809, 5: 516, 17: 2, 293: 0}


@pytest.fixture
def flat_val(tmp_path: Path) -> Path:
    root = tmp_path / "val"
    root.mkdir()
    for number, cls in VAL.items():
        shutil.copy(photo(cls), root / f"ILSVRC2012_val_{number:08d}.JPEG")
    rows = [f"ILSVRC2012_val_{n:08d}.JPEG {wnids()[c]}" for n, c in VAL.items()]
    (tmp_path / "val_labels.txt").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture
def v2_root(tmp_path: Path) -> tuple[Path, dict[str, list[int]]]:
    """9 real Multilabelfy file names (1 with an empty label set) in ImageNetV2 int folders
    named by the first valid label, a class with a demo photo; the photo shows that class."""
    labels = json.loads(MULTILABELFY_JSON.read_text())
    shown = {k: v for k, v in labels.items() if not v or int(v[0]) in DEMO_CLASSES}
    chosen = [k for k, v in shown.items() if len(v) >= 2][:5]
    chosen += [k for k, v in shown.items() if len(v) == 1][:3]
    chosen += [k for k, v in shown.items() if not v][:1]
    root = tmp_path / "imagenetv2-matched-frequency-format-val"
    for key in chosen:
        cls = int(labels[key][0]) if labels[key] else 100
        (root / str(cls)).mkdir(parents=True, exist_ok=True)
        shutil.copy(photo(cls), root / str(cls) / key)
    return root, {k: sorted(int(c) for c in labels[k]) for k in chosen}


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax in float64, written here (not the package's scores)."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    return np.exp(z - np.log(np.exp(z).sum(axis=1, keepdims=True)))


def close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def test_imagenetv2_with_multilabelfy_by_default(compose_cfg, v2_root) -> None:
    """The default model on photos of their folders' classes: every multi-label value equals
    an independent NumPy computation from the saved logits and the label file."""
    dataset = "imagenetv2"
    root, labels = v2_root
    cfg = compose_cfg("data=imagenetv2", f"data.root={root}")
    flat = evaluate(cfg)
    metrics = RunDir(cfg.paths.output_dir).metrics["imagenetv2"]
    assert metrics["num_images"] == 9
    assert metrics["num_labeled"] == 8 and metrics["num_unlabeled"] == 1
    assert metrics["num_images@labels=1"] == 3
    assert sum(metrics[f"num_images@labels={g}"] for g in ("2", "3", "4+")) == 5

    out = Path(cfg.paths.output_dir)
    got = run_metrics(out, dataset)
    np.testing.assert_equal(got, dataset_metrics(flat, dataset))  # returned == written
    preds = read_predictions(out / "predictions" / f"{dataset}.npz")
    names = [str(path).split("/")[-1] for path in preds["path"]]
    assert sorted(names) == sorted(labels)
    from_file = read_label_json(MULTILABELFY_JSON)
    valid = np.zeros(preds["logits"].shape, dtype=bool)
    for row, name in enumerate(names):
        valid[row, from_file[name]] = True
        assert np.flatnonzero(preds["valid"][row]).tolist() == labels[name]
    np.testing.assert_array_equal(preds["valid"], valid)
    assert preds["target"].tolist() == [int(str(path).split("/")[0]) for path in preds["path"]]
    logits = preds["logits"]
    want = reference_multilabel(logits, preds["target"], valid)  # its own softmax
    differ = {k: (got.get(k), v) for k, v in want.items() if k not in got or not close(got[k], v)}
    assert differ == {}
    assert want["real_top1"] > 50 and want["map_macro"] > 0  # real weights, real photos
    run = json.loads((out / "run.json").read_text())
    assert run["datasets"]["imagenetv2"]["labels"] == "multilabelfy"
    assert run["datasets"]["imagenetv2"]["num_empty_label_sets"] == 1


def test_imagenet_flat_with_real_then_rescored(compose_cfg, flat_val, tmp_path) -> None:
    cfg = compose_cfg("model=test_tiny", "data=imagenet", f"data.root={flat_val}")
    flat = evaluate(cfg)
    metrics = RunDir(cfg.paths.output_dir).metrics["imagenet"]
    assert metrics["num_images"] == 7 and metrics["num_unlabeled"] == 1  # ReaL: [] for 1
    run_dir = Path(cfg.paths.output_dir)

    # auto: the labels stored with the predictions -> the same metrics
    rescored = score(compose_cfg(f"run_dir={run_dir}", config_name="score"))
    np.testing.assert_equal(rescored, flat)  # exactly, NaN == NaN
    # none: single-label metrics only, identical to the run's
    cfg = compose_cfg(f"run_dir={run_dir}", "labels=none", config_name="score")
    score(cfg)
    single = RunDir(cfg.paths.output_dir).metrics["imagenet"]
    assert set(single) == {"num_images", *(m.name for m in family("single"))}
    assert all(single[k] == metrics[k] for k in single)
    # a user's label file: every image labelled with its original class only
    user = tmp_path / "mine.json"
    user.write_text(json.dumps({f"ILSVRC2012_val_{n:08d}.JPEG": [c] for n, c in VAL.items()}))
    mine = score(
        compose_cfg(f"run_dir={run_dir}", "labels=file", f"labels.path={user}", config_name="score")
    )
    mine = {k.removeprefix("imagenet/"): v for k, v in mine.items()}
    assert mine["real_top1"] == metrics["top1"] and mine["num_labeled"] == 7


def test_score_bad_input(compose_cfg, flat_val, tmp_path) -> None:
    cfg = compose_cfg("model=test_tiny", "data=imagenet", f"data.root={flat_val}", "head=single")
    evaluate(cfg)
    run_dir = Path(cfg.paths.output_dir)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"x.jpg": [1]}))
    with pytest.raises(DataError, match="has none of this dataset's 7 images"):
        score(
            compose_cfg(
                f"run_dir={run_dir}", "labels=file", f"labels.path={other}", config_name="score"
            )
        )
    with pytest.raises(UserError, match="needs a label set"):
        score(
            compose_cfg(f"run_dir={run_dir}", "labels=none", "head=multilabel", config_name="score")
        )
    (run_dir / "predictions" / "imagenet.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match="corrupt"):
        score(compose_cfg(f"run_dir={run_dir}", config_name="score"))
    unfinished = tmp_path / "unfinished"  # (tmp_path itself holds a run: a folder of runs)
    unfinished.mkdir()
    with pytest.raises(DataError, match="has no metrics.json: that run did not finish"):
        score(compose_cfg(f"run_dir={unfinished}", config_name="score"))
    with pytest.raises(UserError, match="the scored run's own folder"):
        cfg = compose_cfg(f"run_dir={run_dir}", config_name="score")
        cfg.paths.output_dir = str(run_dir)
        score(cfg)


def test_multilabel_head_without_labels_is_an_error(compose_cfg, wnid_folder) -> None:
    cfg = compose_cfg(
        "model=test_tiny", "data=folder", f"data.root={wnid_folder}", "head=multilabel"
    )
    with pytest.raises(UserError, match="head 'multilabel' needs a label set but dataset 'folder'"):
        evaluate(cfg)
    assert not (Path(cfg.paths.output_dir) / "metrics.json").exists()


def test_stats_over_a_datasets_images(compose_cfg, flat_val) -> None:
    from imagenet_multilabel.tasks.stats import stats

    cfg = compose_cfg("data=imagenet", f"data.root={flat_val}", config_name="stats")
    metrics = stats(cfg, output_dir=cfg.paths.output_dir)
    # ReaL of val images 1, 2, 3, 4, 5, 17, 293: [], [970, 795], [230, 231], [809],
    # [516, 850], and 17 / 293 as read from the real file below
    real = json.loads(REAL_JSON.read_text())
    sizes = [len(real[n - 1]) for n in VAL]
    assert metrics["real/images"] == 7
    assert metrics["real/empty"] == sizes.count(0) == 1
    assert metrics["real/labels_2"] == sizes.count(2)
    assert metrics["real/multi_share"] == pytest.approx(sum(s >= 2 for s in sizes) / 7)
