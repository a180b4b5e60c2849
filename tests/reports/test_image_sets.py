"""Every result proves which images it counted: metrics.json's image set, kept apart from
the metrics, and the leaderboard's note on rows of one dataset that counted others."""

from __future__ import annotations

import csv
import hashlib
import json
import random

from imagenet_multilabel.data.datasets.folders import DEMO_ROOT, WnidFilesDataset
from imagenet_multilabel.data.fingerprint import dataset_fingerprint, image_set
from imagenet_multilabel.reports.leaderboard import gather
from imagenet_multilabel.runs.image_sets import scored_image_set
from imagenet_multilabel.runs.rundir import RunDir
from tests.helpers import folder_image_ids, write_run


def _reference(ids: list[str]) -> str:
    return hashlib.sha256("".join(f"{i}\n" for i in sorted(set(ids))).encode()).hexdigest()


def test_the_hash_is_of_the_distinct_sorted_ids_in_any_order() -> None:
    """Any order, any repetition (ranks gathering in any order, a copy counted twice):
    the same hash, that of the distinct ids sorted; the dataset's fingerprint has it."""
    ids = folder_image_ids(DEMO_ROOT)
    rng = random.Random(3)
    for _ in range(20):
        picked = rng.sample(ids, rng.randint(1, len(ids)))
        shuffled = picked + rng.choices(picked, k=rng.randint(0, 5))
        rng.shuffle(shuffled)
        found = image_set(shuffled)
        assert found == {"num_distinct_images": len(picked), "images_sha256": _reference(picked)}
    dataset = WnidFilesDataset(DEMO_ROOT)
    assert dataset_fingerprint(dataset)["ids_sha256"] == _reference(ids)
    order = list(range(len(dataset.files)))
    rng.shuffle(order)
    assert scored_image_set(dataset.files, order)["images_sha256"] == _reference(ids)


def _metrics(top1: float, ids: list[str]) -> dict:
    return {"num_images": len(ids), "top1": top1, **image_set(ids)}


def test_leaderboard_notes_rows_of_one_dataset_that_counted_other_images(tmp_path) -> None:
    ids = [f"n01440764/{i}.JPEG" for i in range(10)]
    write_run(tmp_path / "a", "model_a", {"val": _metrics(70.0, ids), "v2": _metrics(60.0, ids)})
    write_run(tmp_path / "b", "model_b", {"val": _metrics(71.0, ids), "v2": _metrics(61.0, ids)})
    write_run(tmp_path / "c", "model_c", {"val": _metrics(72.0, ids[:9]), "v2": _metrics(1, ids)})
    write_run(tmp_path / "old", "model_d", {"val": {"num_images": 10, "top1": 50.0}})
    run = RunDir(tmp_path / "c")
    assert "images_sha256" not in run.metrics["val"]  # not a metric
    assert run.image_sets["val"] == image_set(ids[:9])
    board = gather([tmp_path])
    (note,) = [n for n in board.notes if "image sets" in n]
    assert note.startswith("val: rows scored different image sets (2 row(s) (model_a, model_b)")
    assert "1 row(s) (model_c): 9 images" in note and "model_d" not in note
    rows = list(csv.DictReader(board.to_csv().splitlines()))
    assert not any("images_sha256" in k for k in rows[0])
    assert "scored different image sets" in board.to_markdown()
    by_model = {r["model"]: r for r in board.to_json()["rows"]}
    assert by_model["model_c"]["image_sets"]["val"]["num_distinct_images"] == 9
    json.dumps(board.to_json())
