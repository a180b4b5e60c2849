"""Per-image rows of saved predictions: sampling, top-5, and the "wrong but valid" case."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from imagenet_multilabel.core.classes import class_names
from imagenet_multilabel.core.errors import DataError
from imagenet_multilabel.core.files import write_json
from imagenet_multilabel.reports.per_image import per_image_rows
from imagenet_multilabel.runs.rundir import write_predictions


def predictions(n: int = 10) -> dict[str, np.ndarray]:
    logits = np.zeros((n, 1000), np.float32)
    logits[np.arange(n), np.arange(n) + 100] = 5.0  # top-1: class i + 100
    logits[np.arange(n), np.arange(n) + 200] = 4.0  # second: class i + 200
    target = np.arange(n) + 100
    target[1] = 7  # image 1: top-1 is not its original label ...
    valid = np.zeros((n, 1000), bool)
    valid[np.arange(n), target] = True
    valid[1, 101] = True  # ... but a valid one
    return {
        "index": np.arange(n),
        "path": np.array([f"img{i}.JPEG" for i in range(n)]),
        "target": target,
        "logits": logits,
        "valid": valid,
    }


def test_rows_of_predictions() -> None:
    rows = per_image_rows(predictions(), n=10, seed=0, dataset="x")
    assert [r.index for r in rows] == list(range(10))  # all of them, in dataset order
    first, second = rows[0], rows[1]
    assert first.top1 == 100 and first.correct and first.top1_valid
    assert [c for c, _ in first.top5][:2] == [100, 200]
    probs = [p for _, p in first.top5]
    assert probs == sorted(probs, reverse=True) and sum(probs) < 1
    assert probs[0] == pytest.approx(np.exp(5) / (np.exp(5) + np.exp(4) + 998))
    assert not second.correct and second.wrong_but_valid and second.valid == [7, 101]
    d = second.as_dict()
    assert d["label"] == f"{class_names()[7]} (7)" and len(d["top5"]) == 5
    assert d["top5"][0].startswith(f"{class_names()[101]} (101) ")


def test_sampling_is_seeded_and_bounded() -> None:
    a = [r.index for r in per_image_rows(predictions(), n=3, seed=1)]
    assert a == [r.index for r in per_image_rows(predictions(), n=3, seed=1)] and len(a) == 3
    assert a == sorted(a)
    no_labels = {k: v for k, v in predictions().items() if k != "valid"}
    (row,) = per_image_rows(no_labels, n=1)
    assert row.valid is None and row.wrong_but_valid is None


def test_rows_of_a_run_folder_find_the_files(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.JPEG", "b.JPEG"):
        (photos / name).write_bytes(b"x")
    preds = predictions(2)
    preds["path"] = np.array(["a.JPEG", "a.JPEG+b.JPEG"])
    run = tmp_path / "run"
    write_predictions(run / "predictions" / "x.npz", files=list(preds.pop("path")), **preds)
    write_json(run / "run.json", {"datasets": {"x": {"root": str(photos)}}})
    write_json(run / "metrics.json", {"x/top1": 1.0})
    rows = per_image_rows(run, n=5)
    assert [r.files for r in rows] == [
        [photos / "a.JPEG"],
        [photos / "a.JPEG", photos / "b.JPEG"],
    ]
    (run / "predictions" / "x.npz").unlink()
    with pytest.raises(DataError, match="holds no predictions"):
        per_image_rows(run, n=5)
