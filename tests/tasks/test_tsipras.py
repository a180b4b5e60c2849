"""labels=tsipras: Tsipras et al.'s object annotations, vendored as a CSV made from the
authors' pickle; a run on photos named as annotated val files gives every metric and
``main_top1`` (top-1 against the annotators' main object), equal to NumPy references
computed from the saved logits; ``score``, ``stats`` and ``gap`` read it."""

from __future__ import annotations

import csv
import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from imagenet_multilabel.core.classes import wnids
from imagenet_multilabel.core.errors import DataError
from imagenet_multilabel.data.labels.sets import load_tsipras
from imagenet_multilabel.runs.image_sets import split_image_sets
from imagenet_multilabel.runs.rundir import RunDir, read_predictions
from imagenet_multilabel.scoring.metrics.names import unflatten_metrics
from imagenet_multilabel.tasks.evaluate import evaluate
from imagenet_multilabel.tasks.score import score
from tests.helpers import DEMO_CLASSES, PACKAGE, REPO, SHARED_LABELS, photo
from tests.scoring.metrics.np_reference import GROUPS, close, pct, ranking, single_label
from tests.scoring.metrics.np_reference import multilabel as reference_multilabel

TSIPRAS_CSV = PACKAGE / "assets/labels/tsipras/tsipras_classify.csv"
PICKLE = SHARED_LABELS / "tsipras-imagenet/annotations_classify_task.pkl"


def read_csv() -> dict[str, tuple[int, list[int]]]:
    """The vendored file read with csv: file -> (main, object classes)."""
    with TSIPRAS_CSV.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return {r["file"]: (int(r["main"]), [int(c) for c in r["objects"].split()]) for r in rows}


@pytest.fixture
def tsipras_val(tmp_path: Path) -> tuple[Path, dict[str, tuple[int, list[int]]]]:
    """Annotated val file names of every object count (1 to 4+), each a real photo of its
    main object (a class with a demo photo), in the wnid folder of its lowest object class
    (the original label then differs from the main object on several images)."""
    table = read_csv()
    chosen: list[str] = []
    for count, take in ((1, 3), (2, 3), (3, 2), (4, 1), (5, 1)):
        shown = [k for k, (m, objs) in table.items() if m in DEMO_CLASSES and len(objs) == count]
        chosen += shown[:take]
    root = tmp_path / "val"
    for name in chosen:
        main, objects = table[name]
        folder = root / wnids()[objects[0]]
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(photo(main), folder / name)
    return root, {k: table[k] for k in chosen}


@pytest.mark.slow
def test_tsipras_run_every_metric_and_main_top1(compose_cfg, tsipras_val, tmp_path) -> None:
    root, table = tsipras_val
    cfg = compose_cfg("data=folder", f"data.root={root}", "labels=tsipras")
    evaluate(cfg)
    out = Path(cfg.paths.output_dir)
    got = RunDir(out).metrics["folder"]
    preds = read_predictions(out / "predictions" / "folder.npz")
    names = [str(p).split("/")[-1] for p in preds["path"]]
    assert sorted(names) == sorted(table)
    valid = np.zeros(preds["logits"].shape, dtype=bool)
    main = np.array([table[n][0] for n in names])
    for row, name in enumerate(names):
        valid[row, table[name][1]] = True
    np.testing.assert_array_equal(preds["valid"], valid)
    np.testing.assert_array_equal(preds["main"], main)
    logits, target = preds["logits"], preds["target"]
    assert (target != main).sum() >= 3  # main_top1 and top1 measure different things

    want = {**single_label(logits, target), **reference_multilabel(logits, target, valid)}
    top1 = ranking(logits)[:, 0]
    want["main_top1"] = pct(top1 == main)
    counts = valid.sum(axis=1)
    for g in GROUPS:
        members = counts >= 4 if g == "4+" else counts == int(g)
        want[f"main_top1@labels={g}"] = pct(top1[members] == main[members])
    assert set(got) == set(want)  # every metric, nothing else
    differ = {k: (got[k], v) for k, v in want.items() if not close(got[k], v)}
    assert differ == {}
    assert got["num_images@labels=4+"] == 2 and got["num_unlabeled"] == 0
    assert want["main_top1"] >= 50  # real weights on photos of the main objects

    # score: the stored labels (auto) and the vendored set again give the same metrics
    for labels in ("labels=auto", "labels=tsipras"):
        rescored = score(compose_cfg(f"run_dir={out}", labels, config_name="score"))
        rescored_metrics = split_image_sets(unflatten_metrics(rescored))[0]["folder"]
        assert rescored_metrics == pytest.approx(got, nan_ok=True)
    # another label set: no main object, no main_top1
    cfg_real = compose_cfg(f"run_dir={out}", "labels=real", config_name="score")
    assert not any("main_top1" in k for k in score(cfg_real))

    # gap reads the label-count subgroups of two such runs
    from imagenet_multilabel.tasks.gap import gap

    other = compose_cfg("data=folder", f"data.root={root}", "labels=tsipras", "model=test_tiny")
    evaluate(other)
    flat = gap(compose_cfg(f"a={out}", f"b={other.paths.output_dir}", config_name="gap"))
    assert flat["top1/gap"] == pytest.approx(
        RunDir(other.paths.output_dir).metrics["folder"]["top1"] - got["top1"]
    )
    assert "main_top1/gap" not in flat  # gap explains the label-count subgroups' metrics


def test_stats_of_tsipras_beside_real_and_multilabelfy(compose_cfg) -> None:
    from imagenet_multilabel.tasks.stats import stats

    cfg = compose_cfg("labels=tsipras", "compare=[real,multilabelfy]", config_name="stats")
    metrics = stats(cfg, output_dir=cfg.paths.output_dir)
    counts = [len(objs) for _, objs in read_csv().values()]
    assert metrics["tsipras/images"] == len(counts) == 6761
    assert metrics["tsipras/empty"] == 0
    for k in (1, 2, 3, 4):
        assert metrics[f"tsipras/labels_{k}"] == counts.count(k)
    assert metrics["tsipras/labels_5+"] == sum(c >= 5 for c in counts)
    assert metrics["tsipras/multi_share"] == pytest.approx(sum(c >= 2 for c in counts) / 6761)
    assert metrics["real/images"] == 50_000 and metrics["multilabelfy/images"] == 10_000


def test_tsipras_label_file_checks(tmp_path) -> None:
    labels = load_tsipras()
    table = read_csv()
    assert labels.main == {k: m for k, (m, _) in table.items()}
    assert labels.by_file == {k: tuple(objs) for k, (_, objs) in table.items()}
    bad = tmp_path / "bad.csv"
    bad.write_text("file,label\nILSVRC2012_val_00000001.JPEG,3\n")
    with pytest.raises(DataError, match="not a Tsipras label file"):
        load_tsipras(bad)
    bad.write_text("file,main,objects\nILSVRC2012_val_00000001.JPEG,1000,3\n")
    with pytest.raises(DataError, match="outside 0..999"):
        load_tsipras(bad)
    with pytest.raises(DataError, match="does not exist"):
        load_tsipras(tmp_path / "none.csv")


@pytest.mark.skipif(not PICKLE.is_file(), reason=f"needs the released pickle ({PICKLE})")
def test_vendored_file_is_the_released_pickle(monkeypatch) -> None:
    """The vendored CSV is what the build script makes from the authors' pickle, and the
    object labels follow the notebook's reading of ``objects``."""
    monkeypatch.syspath_prepend(str(REPO / "scripts"))  # its provenance.py, as when run
    spec = importlib.util.spec_from_file_location(
        "build_tsipras_labels", REPO / "scripts/build_tsipras_labels.py"
    )
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    files, cols = build.read_classify_frame(PICKLE)
    table = read_csv()
    assert sorted(files) == sorted(table) and len(files) == 6761
    for i, name in enumerate(files):
        objects = {sorted((-v[0], k) for k, v in o.items())[0][1] for o in cols["objects"][i]}
        assert table[name] == (int(cols["main_top"][i]), sorted(int(c) for c in objects))
        assert len(objects) == int(cols["num_objects"][i])
