"""Label sets: the real ReaL / Multilabelfy files (the copies timm and this package ship;
compared with the originals in ../shared/data/labels when present), Shankar's format, user
files, the join."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from imagenet_multilabel.core.classes import wnids
from imagenet_multilabel.core.errors import DataError, UserError
from imagenet_multilabel.data.datasets.folders import ImageNetV2Dataset, ImageNetValDataset
from imagenet_multilabel.data.labels.sets import (
    LabelSet,
    label_counts,
    load_label_file,
    load_label_set,
    load_multilabelfy,
    load_real,
    load_shankar,
    val_file_name,
)
from tests.helpers import MULTILABELFY_JSON, REAL_JSON, REPO, SHARED_LABELS, requires_shared_labels


@pytest.fixture(scope="module")
def real() -> LabelSet:
    return load_real(REAL_JSON)


# --- ReaL ---------------------------------------------------------------------------------


def test_real_file_entries(real: LabelSet) -> None:
    raw = json.loads(REAL_JSON.read_text())
    assert len(real) == 50_000 and real.name == "real"
    assert real.by_file["ILSVRC2012_val_00000001.JPEG"] == ()
    assert real.by_file["ILSVRC2012_val_00000002.JPEG"] == (795, 970)  # sorted
    assert real.by_file[val_file_name(50_000)] == tuple(sorted(raw[-1]))
    assert sum(1 for v in real.by_file.values() if not v) == sum(1 for v in raw if not v)


def test_real_default_is_timm_copy(real: LabelSet) -> None:
    assert load_real().by_file == real.by_file


@requires_shared_labels
def test_real_timm_copy_matches_source(real: LabelSet) -> None:
    assert load_real(SHARED_LABELS / "reassessed-imagenet" / "real.json").by_file == real.by_file


def test_real_join_subset(real: LabelSet, flat_val: Path, val_subset: dict[int, int]) -> None:
    rows = [f"ILSVRC2012_val_{n:08d}.JPEG {c}" for n, c in val_subset.items()]
    (flat_val.parent / "val_labels.txt").write_text("\n".join(rows))
    ds = ImageNetValDataset(flat_val)
    joined = real.join(ds.file_names)
    raw = json.loads(REAL_JSON.read_text())
    assert joined.valid.shape == (5, 1000) and joined.valid.dtype == torch.bool
    for row, name in enumerate(ds.file_names):
        number = int(name[15:23])
        assert sorted(joined.valid[row].nonzero().flatten().tolist()) == sorted(raw[number - 1])
    assert joined.num_empty == 1 and joined.num_missing == 0  # image 1 has no valid label
    assert joined.labeled.tolist() == [bool(raw[n - 1]) for n in sorted(val_subset)]
    assert label_counts(joined.valid).tolist() == [len(set(raw[n - 1])) for n in sorted(val_subset)]
    assert joined.counts.tolist() == label_counts(joined.valid).tolist()


def test_real_wrong_length_and_not_json(tmp_path: Path) -> None:
    short = tmp_path / "real.json"
    short.write_text(json.dumps([[1]] * 49_999))
    with pytest.raises(DataError, match=r"expected a JSON list of 50000 entries, found 49999"):
        load_real(short)
    short.write_text("[[1], [2")
    with pytest.raises(DataError, match=r"is not valid JSON"):
        load_real(short)
    with pytest.raises(DataError, match=r"does not exist"):
        load_real(tmp_path / "missing.json")


def test_real_out_of_range_index(tmp_path: Path) -> None:
    bad = tmp_path / "real.json"
    bad.write_text(json.dumps([[1]] * 49_999 + [[1000]]))
    with pytest.raises(DataError, match=r"ILSVRC2012_val_00050000.JPEG: class index 1000"):
        load_real(bad)


# --- the join -----------------------------------------------------------------------------


def test_join_missing_and_allow_missing() -> None:
    labels = LabelSet("x", {"a.jpg": (1, 2), "b.jpg": (), "other.jpg": (3,)})
    with pytest.raises(DataError, match=r"1 of 3 images .* \(e.g. c.jpg\).*allow_missing=true"):
        labels.join(["a.jpg", "b.jpg", "c.jpg"])
    joined = labels.join(["sub/a.jpg", "b.jpg", "c.jpg"], allow_missing=True)
    assert joined.num_missing == 1 and joined.num_empty == 1 and joined.num_labeled == 1
    assert joined.labeled.tolist() == [True, False, False]
    assert joined.valid[0].nonzero().flatten().tolist() == [1, 2]
    assert int(joined.valid[1:].sum()) == 0


def test_join_with_no_image_of_the_dataset_is_an_error() -> None:
    """allow_missing scores absent images as unlabeled; with none present there is nothing
    to score (the wrong label set), which was a run with every label metric empty."""
    labels = LabelSet("real", {"ILSVRC2012_val_00000001.JPEG": (1,)})
    for allow in (False, True):
        with pytest.raises(
            DataError, match=r"label set 'real' has none of this dataset's 2 images.*labels=none"
        ):
            labels.join(["a.jpg", "b.jpg"], allow_missing=allow)


def test_missing_images_message_names_labels_none() -> None:
    with pytest.raises(DataError, match=r"labels=none for single-label metrics only"):
        LabelSet("x", {"a.jpg": (1,)}).join(["a.jpg", "b.jpg"])


@pytest.mark.parametrize("option", ["file", "shankar"])
def test_label_option_without_its_file_is_one_line(option: str) -> None:
    """The stats and score tasks load label options themselves: a missing path (???) was a
    MissingMandatoryValue traceback from Hydra's instantiate."""
    spec = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "labels" / f"{option}.yaml"))
    with pytest.raises(UserError, match=rf"^labels={option} needs labels.path: pass labels.path="):
        load_label_set(spec)


def test_allow_missing_must_be_a_switch() -> None:
    spec = {"name": "file", "_target_": "x", "path": "l.csv", "allow_missing": "flase"}
    with pytest.raises(DataError, match=r"labels.allow_missing='flase' is not valid"):
        load_label_set(spec)


def test_join_duplicate_base_names() -> None:
    labels = LabelSet("x", {"a.jpg": (1,)})
    with pytest.raises(DataError, match=r"file names occur more than once .*a.jpg"):
        labels.join(["1/a.jpg", "2/a.jpg"])


def test_label_set_validates_its_entries() -> None:
    with pytest.raises(DataError, match=r"not sorted unique indices"):
        LabelSet("x", {"a.jpg": (2, 1)})
    with pytest.raises(DataError, match=r"not sorted unique indices"):
        LabelSet("x", {"a.jpg": (1000,)})


# --- Multilabelfy -------------------------------------------------------------------------


def test_multilabelfy_vendored_copy() -> None:
    vendored = load_multilabelfy()
    raw = json.loads(MULTILABELFY_JSON.read_text())
    assert vendored.by_file == {k: tuple(sorted({int(c) for c in v})) for k, v in raw.items()}
    assert len(vendored) == 10_000 and vendored.name == "multilabelfy"
    assert vendored.by_file["3e7c39f1689e8806c3a4eebe12dda2a97ea3b74f.jpeg"] == (356, 359)
    assert sum(1 for v in vendored.by_file.values() if not v) == 129


@requires_shared_labels
def test_multilabelfy_vendored_copy_matches_source() -> None:
    source = SHARED_LABELS / "multilabelfy" / "imagenetv2_refined_labels.json"
    assert load_multilabelfy().by_file == load_multilabelfy(source).by_file


def test_multilabelfy_joins_imagenetv2_layout(tmp_path: Path, put_photo) -> None:
    raw = json.loads(MULTILABELFY_JSON.read_text())
    picked = list(raw.items())[:4]
    root = tmp_path / "imagenetv2-matched-frequency-format-val"
    for name, labels in picked:
        cls = int(labels[0]) if labels else 0
        put_photo(cls, root / str(cls) / name)
    ds = ImageNetV2Dataset(tmp_path)
    joined = load_multilabelfy().join(ds.file_names)
    assert joined.num_missing == 0
    for row, name in enumerate(ds.file_names):
        assert joined.valid[row].nonzero().flatten().tolist() == sorted(map(int, raw[name]))


def test_multilabelfy_bad_files(tmp_path: Path) -> None:
    bad = tmp_path / "ml.json"
    bad.write_text(json.dumps([["1"]]))
    with pytest.raises(DataError, match=r"expected a JSON object"):
        load_multilabelfy(bad)
    bad.write_text(json.dumps({"a.jpeg": ["1", "n99999999"]}))
    with pytest.raises(DataError, match=r"a.jpeg: 'n99999999' is neither"):
        load_multilabelfy(bad)


# --- user label files ----------------------------------------------------------------------


def test_label_file_json_and_csv(tmp_path: Path) -> None:
    js = tmp_path / "labels.json"
    js.write_text(json.dumps({"x/a.jpg": [3, wnids()[1], "3"], "b.jpg": [], "c.jpg": 7}))
    labels = load_label_file(js)
    assert labels.by_file == {"a.jpg": (1, 3), "b.jpg": (), "c.jpg": (7,)}
    csv = tmp_path / "labels.csv"
    csv.write_text(f"image,labels\na.jpg,3 {wnids()[1]}\nb.jpg\nc.jpg,7,8\n")
    assert load_label_file(csv).by_file == {"a.jpg": (1, 3), "b.jpg": (), "c.jpg": (7, 8)}


def test_label_file_errors(tmp_path: Path) -> None:
    dup = tmp_path / "dup.json"
    dup.write_text(json.dumps({"1/a.jpg": 1, "2/a.jpg": 2}))
    with pytest.raises(DataError, match=r"two entries share the file name a.jpg"):
        load_label_file(dup)
    rows = tmp_path / "rows.csv"
    rows.write_text("a.jpg,1\na.jpg,2\n")
    with pytest.raises(DataError, match=r"listed twice"):
        load_label_file(rows)
    rows.write_text("a.jpg,-1\n")
    with pytest.raises(DataError, match=r"neither a class index nor"):
        load_label_file(rows)
    rows.write_text("file,label\n")
    with pytest.raises(DataError, match=r"has a header but no rows"):
        load_label_file(rows)
    pic = tmp_path / "labels.png"
    pic.write_bytes(b"\x89PNG\r\n")
    with pytest.raises(DataError, match=r"neither JSON nor CSV"):
        load_label_file(pic)
    with pytest.raises(DataError, match=r"no label file given"):
        load_label_file(None)


def test_label_file_whole_floats_are_indices(tmp_path: Path) -> None:
    """pandas writes an int column with a gap as 3.0: read as class 3; 3.5 stays an error."""
    js = tmp_path / "labels.json"
    js.write_text(json.dumps({"a.jpg": [3.0, 7], "b.jpg": 12.0}))
    assert load_label_file(js).by_file == {"a.jpg": (3, 7), "b.jpg": (12,)}
    rows = tmp_path / "labels.csv"
    rows.write_text("a.jpg,3.0\nb.jpg,12.00 7\n")
    assert load_label_file(rows).by_file == {"a.jpg": (3,), "b.jpg": (7, 12)}
    js.write_text(json.dumps({"a.jpg": [3.5]}))
    with pytest.raises(DataError, match=r"a.jpg: class 3.5 is not an index"):
        load_label_file(js)
    rows.write_text("a.jpg,1000.0\n")
    with pytest.raises(DataError, match=r"class index 1000 is outside 0..999"):
        load_label_file(rows)


def test_label_file_excel_separator_line(tmp_path: Path) -> None:
    """Excel's "sep=;" first line, then a header: the rows were read with ',' and the header
    taken for a row ("'label' is neither a class index ...")."""
    rows = tmp_path / "labels.csv"
    rows.write_text('sep=;\r\nfile;label\r\na.jpg;3\r\nb.jpg;"4 5"\r\n', newline="")
    assert load_label_file(rows).by_file == {"a.jpg": (3,), "b.jpg": (4, 5)}
    rows.write_text("sep=;\n")
    with pytest.raises(DataError, match=r"has no rows"):
        load_label_file(rows)


def test_label_file_that_is_a_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"labels file .* is a folder, not a file"):
        load_label_file(tmp_path)
    with pytest.raises(DataError, match=r"labels file .* is a folder, not a file"):
        load_real(tmp_path)


# --- Shankar et al. 2020 -------------------------------------------------------------------


def _shankar_data() -> dict:
    """A small dict in the structure of human_accuracy.pickle (see load_shankar)."""
    v2_id = "25949dd0704552263197b05a8359771a4192ff45"
    ids = ["ILSVRC2012_val_00000002.JPEG", "ILSVRC2012_val_00000007.JPEG", v2_id]
    return {
        "labeled_images": ids,
        "image_labels": {
            ids[0]: {"correct": [wnids()[970], wnids()[795]], "wrong": [wnids()[3]]},
            ids[1]: {"correct": [wnids()[5]], "unclear": [wnids()[6]]},
            v2_id: {"correct": [wnids()[35]], "wrong": []},
        },
        "image_map": {
            ids[0]: {"id": ids[0], "problematic": False},
            ids[1]: {"id": ids[1], "problematic": True},
            v2_id: {"id": v2_id, "problematic": False},
        },
        "all_candidates": {v2_id},
        "wnid_map": {ids[0]: wnids()[970], ids[1]: wnids()[5], v2_id: wnids()[35]},
        "annot_data": {"human_a": {}},
        "split_wnids": {("organism",): [wnids()[35]]},
    }


def test_shankar_pickle(tmp_path: Path) -> None:
    path = tmp_path / "human_accuracy.pickle"
    path.write_bytes(pickle.dumps(_shankar_data()))
    val = load_shankar(path)
    assert val.by_file == {
        "ILSVRC2012_val_00000002.JPEG": (795, 970),
        "ILSVRC2012_val_00000007.JPEG": (),  # problematic: no valid label
    }
    v2 = load_shankar(path, dataset="imagenetv2")
    assert v2.by_file == {"25949dd0704552263197b05a8359771a4192ff45.jpeg": (35,)}
    with pytest.raises(DataError, match=r"labels.dataset='v3' is unknown"):
        load_shankar(path, dataset="v3")


def test_shankar_json_v3(tmp_path: Path) -> None:
    data = _shankar_data()
    v3 = {
        "initial_annots": data["image_labels"],
        "problematic_images": {"ILSVRC2012_val_00000007.JPEG": 1},
        "imagenet_m": ["ILSVRC2012_val_00000002.JPEG"],
    }
    path = tmp_path / "human_accuracy_v3.0.0.json"
    path.write_text(json.dumps(v3))
    assert load_shankar(path).by_file == load_shankar_pickle(tmp_path, data).by_file


def load_shankar_pickle(tmp_path: Path, data: dict) -> LabelSet:
    path = tmp_path / "h.pickle"
    path.write_bytes(pickle.dumps(data))
    return load_shankar(path)


class _Evil:
    def __reduce__(self):
        return (os.getcwd, ())


def test_shankar_refuses_code_and_other_formats(tmp_path: Path) -> None:
    path = tmp_path / "human_accuracy.pickle"
    path.write_bytes(pickle.dumps({"image_labels": _Evil()}))
    with pytest.raises(DataError, match=r"refusing to load posix.getcwd"):
        load_shankar(path)
    path.write_bytes(pickle.dumps({"something": 1}))
    with pytest.raises(DataError, match=r"no 'image_labels' or 'initial_annots'"):
        load_shankar(path)
    path.write_bytes(b"not a pickle")
    with pytest.raises(DataError, match=r"not a usable human_accuracy pickle"):
        load_shankar(path)
