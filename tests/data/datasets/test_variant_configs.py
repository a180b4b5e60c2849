"""data=imagenet_a / imagenet_r / imagenet_sketch / imagenet_c and data.class_subset compose
with Hydra and build their datasets; labels: single-label only unless a label file is given."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from imagenet_multilabel.builders import build_dataset
from imagenet_multilabel.core.config import dataset_specs
from imagenet_multilabel.core.errors import DataError, find_user_error, one_line
from imagenet_multilabel.data.datasets.class_subsets import parse_class_subset
from imagenet_multilabel.data.datasets.folders import (
    ImageNetADataset,
    ImageNetRDataset,
    ImageNetSketchDataset,
    WnidFilesDataset,
    WnidFolderDataset,
)
from imagenet_multilabel.data.datasets.imagenet_c import CorruptedDataset, ImageNetCFolderDataset
from imagenet_multilabel.data.labels.sets import resolve_labels
from imagenet_multilabel.runs.image_sets import split_image_sets
from imagenet_multilabel.scoring.metrics.catalog import family
from imagenet_multilabel.scoring.metrics.names import unflatten_metrics
from imagenet_multilabel.tasks.evaluate import evaluate
from tests.data.arrange import demo_arrangement


def _build(cfg):
    ((_, spec),) = dataset_specs(cfg.data).items()
    return build_dataset(spec, transform=None)


def _metrics_of(flat: dict, name: str) -> dict:
    """One dataset's metrics from evaluate's result (``<name>/<metric>`` keys), less which
    images it counted (no metric: runs/image_sets.py)."""
    return split_image_sets(unflatten_metrics(flat))[0][name]


@pytest.fixture
def a_root(tmp_path: Path) -> Path:
    return demo_arrangement(tmp_path / "imagenet-a")


@pytest.mark.parametrize(
    ("option", "subset", "cls"),
    [
        ("imagenet_a", "imagenet_a", ImageNetADataset),
        ("imagenet_r", "imagenet_r", ImageNetRDataset),
        ("imagenet_sketch", "imagenet_a", ImageNetSketchDataset),
    ],
)
def test_variant_options_build(compose_cfg, tmp_path: Path, option, subset, cls) -> None:
    root = demo_arrangement(tmp_path / option, subset)
    ds = _build(compose_cfg("model=test_tiny", f"data={option}", f"data.root={root}"))
    assert type(ds) is cls and ds.name == option and ds.root == root
    if option == "imagenet_sketch":
        assert ds.class_subset is None
    else:
        assert ds.class_subset == tuple(sorted(set(ds.targets)))
    # single labels only: no label set resolves under labels=auto
    resolved = resolve_labels(None, ds.file_names, getattr(ds, "valid_labels", None))
    assert resolved.valid is None and resolved.info == {"labels": "none"}


def test_class_subset_overrides(compose_cfg, a_root: Path, tmp_path: Path) -> None:
    ds = _build(compose_cfg("data=folder", f"data.root={a_root}", "data.class_subset=imagenet_a"))
    assert type(ds) is WnidFolderDataset and len(ds.class_subset) == 200
    listing = tmp_path / "classes.txt"
    listing.write_text("\n".join(p.name for p in sorted(a_root.iterdir())) + "\n")
    cfg = compose_cfg("data=folder", f"data.root={a_root}", f"data.class_subset={listing}")
    from_file = _build(cfg)
    assert from_file.class_subset == tuple(sorted(set(from_file.targets)))


def _build_error(cfg) -> str:
    """The user-facing message of building ``cfg``'s dataset (Hydra wraps the DataError)."""
    with pytest.raises(Exception) as info:
        _build(cfg)
    error = find_user_error(info.value)
    assert isinstance(error, DataError), info.value
    return one_line(error)


def test_class_subset_list_override_is_validated(compose_cfg) -> None:
    cfg = compose_cfg("data=demo", "data.class_subset=[n01440764,1,2,3]")
    assert "not in data.class_subset (4 classes)" in _build_error(cfg)
    cfg = compose_cfg("data=demo", "data.class_subset=[n01440764,1000]")
    assert "class index 1000 is out of range" in _build_error(cfg)


def test_imagenet_c_options_build(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg("data=imagenet_c", "data.base=demo", "data.corruption=contrast")
    ds = _build(cfg)
    assert type(ds) is CorruptedDataset and ds.name == "imagenet_c-contrast-3"
    assert ds.severity == 3 and len(ds) == 100
    # any dataset config as the base
    cfg = compose_cfg(
        "data=imagenet_c",
        "data.base={_target_:imagenet_multilabel.data.datasets.folders.WnidFilesDataset}",
        "data.severity=5",
    )
    ds = _build(cfg)
    assert isinstance(ds.base, WnidFilesDataset) and ds.name == "imagenet_c-gaussian_noise-5"
    # the released layout
    photo = next(WnidFilesDataset().root.glob("n01440764_*.JPEG"))
    folder = tmp_path / "ImageNet-C" / "fog" / "1" / "n01440764"
    folder.mkdir(parents=True)
    shutil.copy(photo, folder / "ILSVRC2012_val_00000293.JPEG")
    cfg = compose_cfg(
        "data=imagenet_c",
        f"data.root={tmp_path / 'ImageNet-C'}",
        "data.prepared=true",
        "data.corruption=fog",
        "data.severity=1",
    )
    ds = _build(cfg)
    assert type(ds) is ImageNetCFolderDataset and ds.targets == [0]


def test_evaluate_imagenet_a_single_label_then_with_a_label_file(
    compose_cfg, a_root: Path, tmp_path: Path
) -> None:
    """No label set: the single-label metrics only. A ReaL-style label file (labels=file)
    adds the multi-label metrics."""
    cfg = compose_cfg("model=test_tiny", "data=imagenet_a", f"data.root={a_root}")
    single = _metrics_of(evaluate(cfg), "imagenet_a")
    assert set(single) == {"num_images", *(m.name for m in family("single"))}
    assert single["num_images"] == 23

    files = sorted(p.name for p in a_root.glob("*/*.JPEG"))
    labels = {name: [name.split("_", 1)[0], 1] for name in files}  # wnid + goldfish
    labels[files[0]] = []  # one image without a valid label
    path = tmp_path / "real_style.json"
    path.write_text(json.dumps(labels))
    cfg = compose_cfg(
        "model=test_tiny", "data=imagenet_a", f"data.root={a_root}", "labels=file",
        f"labels.path={path}",
    )  # fmt: skip
    multi = _metrics_of(evaluate(cfg), "imagenet_a")
    assert multi["num_labeled"] == 22 and multi["num_images@labels=2"] == 22
    assert {"real_top1", "asma", "map_macro"} <= set(multi)
    assert multi["top1"] == single["top1"]


def test_named_subsets_match_the_datasets(a_root: Path) -> None:
    ds = ImageNetADataset(a_root, class_subset="imagenet_a")
    assert ds.class_subset == parse_class_subset("imagenet_a")


def test_evaluation_scores_only_the_datasets_classes(compose_cfg, a_root: Path) -> None:
    """End to end: metrics of data=imagenet_a are those of the logits restricted to its
    classes (NumPy reference that masks the saved, unrestricted logits); score does the
    same from the run's record."""
    import numpy as np

    from imagenet_multilabel.runs.rundir import RunDir
    from imagenet_multilabel.tasks.score import score

    cfg = compose_cfg("model=test_tiny", "data=imagenet_a", f"data.root={a_root}")
    flat = evaluate(cfg)
    run = RunDir(cfg.paths.output_dir)
    preds = run.predictions("imagenet_a")
    subset = run.info["datasets"]["imagenet_a"]["class_subset"]
    assert subset == sorted(set(preds["target"].tolist()))
    masked = np.full_like(preds["logits"], -np.inf)
    masked[:, subset] = preds["logits"][:, subset]
    top1 = 100.0 * np.mean(masked.argmax(1) == preds["target"])
    assert run.metrics["imagenet_a"]["top1"] == top1
    unrestricted = 100.0 * np.mean(preds["logits"].argmax(1) == preds["target"])
    assert top1 >= unrestricted
    rescored = score(compose_cfg(f"run_dir={run.path}", config_name="score"))
    assert rescored == flat
