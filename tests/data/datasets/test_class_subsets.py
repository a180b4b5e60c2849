"""Class subsets: parsing and validation, ImageNet-A/R folders on real photos, and the
restriction of logits that the scorer applies (checked against NumPy and against scoring
only the subset's columns)."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest
import timm.data
import torch

from imagenet_multilabel.core.classes import wnid_to_index, wnids
from imagenet_multilabel.core.errors import DataError
from imagenet_multilabel.data.datasets.class_subsets import (
    official_wnids,
    parse_class_subset,
    restrict_logits,
)
from imagenet_multilabel.data.datasets.folders import (
    ImageNetADataset,
    ImageNetRDataset,
    ImageNetSketchDataset,
    WnidFolderDataset,
)
from imagenet_multilabel.scoring.metrics.multilabel import multilabel_metrics
from imagenet_multilabel.scoring.metrics.single import single_label_metrics
from tests.data.arrange import demo_arrangement, sample_arrangement, sample_available

TIMM_INFO = Path(timm.data.__file__).parent / "_info"


def _timm_indices(name: str) -> tuple[int, ...]:
    return tuple(int(x) for x in (TIMM_INFO / f"{name}_indices.txt").read_text().split())


# --- parsing -------------------------------------------------------------------------------


def test_parse_lists_files_and_names(tmp_path: Path) -> None:
    assert parse_class_subset(None) is None
    assert parse_class_subset(["n01443537", 0, "7", "n01440764"]) == (0, 1, 7)
    listing = tmp_path / "subset.txt"
    listing.write_text("# my classes\nn01443537 goldfish\n\n5\n  n01440764\t tench # first\n")
    assert parse_class_subset(listing) == (0, 1, 5)
    assert parse_class_subset(str(listing)) == (0, 1, 5)
    for name in ("imagenet_a", "imagenet_r"):
        subset = parse_class_subset(name)
        assert len(subset) == 200 and subset == tuple(sorted(_timm_indices(name)))


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (["n99999999"], r"'n99999999' is not an ImageNet-1k WordNet id"),
        ([1000], r"class index 1000 is out of range 0..999"),
        (["-1"], r"class index -1 is out of range"),
        ([True], r"True is not a class"),
        ([], r"names no class"),
        ("no/such/file.txt", r"class subset file no/such/file.txt does not exist"),
    ],
)
def test_parse_rejects_bad_classes(spec, match: str) -> None:
    with pytest.raises(DataError, match=match) as info:
        parse_class_subset(spec)
    assert "\n" not in str(info.value)


def test_parse_file_names_the_file(tmp_path: Path) -> None:
    listing = tmp_path / "s.txt"
    listing.write_text("n01440764\nn0144076\n")
    with pytest.raises(DataError, match=rf"{listing}: 'n0144076' is not"):
        parse_class_subset(listing)


# --- datasets ------------------------------------------------------------------------------


def test_folder_dataset_takes_a_subset(tmp_path: Path) -> None:
    root = demo_arrangement(tmp_path / "a")
    full = WnidFolderDataset(root)
    assert full.class_subset is None  # a plain folder is scored on all 1000 classes
    given = [*sorted(set(full.targets)), 999]
    ds = WnidFolderDataset(root, class_subset=given)
    assert ds.class_subset == tuple(given) and ds.targets == full.targets
    outside = [t for t in given if t != full.targets[0]]
    with pytest.raises(DataError, match=rf"{wnids()[full.targets[0]]} \(index") as info:
        WnidFolderDataset(root, class_subset=outside)
    assert "not in data.class_subset (23 classes)" in str(info.value)
    assert "\n" not in str(info.value)


def test_imagenet_a_from_demo_photos(tmp_path: Path, caplog) -> None:
    root = demo_arrangement(tmp_path / "imagenet-a")
    with caplog.at_level(logging.WARNING):
        ds = ImageNetADataset(tmp_path)  # the parent of imagenet-a/ works too
    assert ds.root == root and len(ds) == 23 and ds.name == "imagenet_a"
    assert ds.default_labels is None
    assert ds.class_subset == tuple(sorted(set(ds.targets)))
    assert set(ds.class_subset) <= set(_timm_indices("imagenet_a"))
    assert "holds 23 of the 200 ImageNet-A classes" in caplog.text
    # the official 200 may be given instead of the folders' classes
    official = ImageNetADataset(root, class_subset="imagenet_a")
    assert official.class_subset == tuple(sorted(_timm_indices("imagenet_a")))
    item = ds[0]
    assert item["target"] == ds.targets[0] and item["image"].mode == "RGB"


def test_imagenet_r_from_demo_photos(tmp_path: Path) -> None:
    ds = ImageNetRDataset(demo_arrangement(tmp_path / "r", "imagenet_r"))
    assert len(ds) == 17 and set(ds.class_subset) <= set(_timm_indices("imagenet_r"))


def test_a_folder_outside_the_official_list_is_an_error(tmp_path: Path) -> None:
    root = demo_arrangement(tmp_path / "r", "imagenet_r")  # ImageNet-R given as -A
    with pytest.raises(DataError, match=r"not one of the 200 ImageNet-A classes") as info:
        ImageNetADataset(root)
    assert "is it ImageNet-A?" in str(info.value)


def test_sketch_root_may_be_the_parent(tmp_path: Path) -> None:
    root = demo_arrangement(tmp_path / "sketch")
    ds = ImageNetSketchDataset(tmp_path)
    assert ds.root == root and ds.class_subset is None and ds.name == "imagenet_sketch"


@pytest.mark.skipif(not sample_available(), reason="needs ../shared/data/imagenet-sample")
@pytest.mark.parametrize("subset", ["imagenet_a", "imagenet_r"])
def test_200_classes_of_the_real_sample(tmp_path: Path, caplog, subset: str) -> None:
    root = sample_arrangement(tmp_path / subset, subset)
    cls = ImageNetADataset if subset == "imagenet_a" else ImageNetRDataset
    with caplog.at_level(logging.WARNING):
        ds = cls(root)
    assert len(ds) == 200 and not caplog.text
    assert ds.class_subset == tuple(sorted(_timm_indices(subset)))
    assert [wnid_to_index()[w] for w in official_wnids(subset)] == list(_timm_indices(subset))


# --- restriction of logits ------------------------------------------------------------------


def _logits(n: int, seed: int, ties: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, 1000, generator=g) * 3
    return logits.round() if ties else logits  # rounding makes many ties


def test_restricted_top1_equals_numpy_masking() -> None:
    subset = parse_class_subset("imagenet_a")
    logits = _logits(300, 0)
    target = torch.tensor(subset)[torch.randint(0, 200, (300,), generator=torch.Generator())]
    restricted = restrict_logits(logits, subset)
    assert restricted.shape == logits.shape and restricted.dtype == logits.dtype
    assert torch.equal(logits, _logits(300, 0))  # the input is not changed

    mask = np.zeros(1000, dtype=bool)
    mask[list(subset)] = True
    reference = np.where(mask, logits.numpy(), -np.inf).argmax(axis=1)
    np.testing.assert_array_equal(restricted.argmax(dim=1).numpy(), reference)
    ours = single_label_metrics(restricted, target)["top1"]
    assert ours == pytest.approx(100.0 * np.mean(reference == target.numpy()), abs=1e-12)
    assert ours > single_label_metrics(logits, target)["top1"]
    assert restrict_logits(logits, None) is logits


def test_restrict_half_precision_and_errors() -> None:
    half = restrict_logits(_logits(4, 1).half(), [3, 5])
    assert half.dtype == torch.float16 and torch.isinf(half).sum() == 4 * 998
    with pytest.raises(ValueError, match="outside 0..999"):
        restrict_logits(_logits(2, 1), [1000])
    with pytest.raises(ValueError, match="empty"):
        restrict_logits(_logits(2, 1), [])


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("scores", ["softmax", "sigmoid"])
def test_metrics_on_restricted_logits_equal_the_subset_columns(ties: bool, scores: str) -> None:
    """Every metric handles the -inf logits: the values equal those of scoring only the
    subset's columns (targets and labels remapped), except hamming_loss, whose
    denominator counts all 1000 classes per image instead of the subset's."""
    subset = parse_class_subset("imagenet_r")
    cols = torch.tensor(subset)
    n = 400
    logits = _logits(n, 2, ties)
    g = torch.Generator().manual_seed(3)
    local_target = torch.randint(0, len(subset), (n,), generator=g)
    local_valid = torch.rand(n, len(subset), generator=g) < 0.01
    local_valid[torch.arange(n), local_target] = True
    local_valid[:7] = False  # some images without a label set
    valid = torch.zeros(n, 1000, dtype=torch.bool)
    valid[:, cols] = local_valid

    restricted = restrict_logits(logits, subset)
    gathered = logits[:, cols]
    assert single_label_metrics(restricted, cols[local_target]) == pytest.approx(
        single_label_metrics(gathered, local_target), rel=1e-12, abs=1e-12
    )
    kwargs = {"scores": scores, "mode": "threshold", "threshold": 0.2}
    ours = multilabel_metrics(restricted, cols[local_target], valid, **kwargs)
    reference = multilabel_metrics(gathered, local_target, local_valid, **kwargs)
    assert ours.keys() == reference.keys()
    for key, value in reference.items():
        if key == "hamming_loss":
            assert ours[key] == pytest.approx(value * len(subset) / 1000, rel=1e-12)
        elif isinstance(value, float) and math.isnan(value):
            assert math.isnan(ours[key]), key
        else:
            assert ours[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key


def test_metrics_with_a_label_outside_the_subset_stay_finite() -> None:
    """A label set (labels=file) may name a class outside the subset: its score is 0, it
    is never predicted, and every metric is still a number."""
    subset = parse_class_subset("imagenet_a")
    outside = next(c for c in range(1000) if c not in set(subset))
    logits = _logits(50, 4)
    target = torch.full((50,), subset[0])
    valid = torch.zeros(50, 1000, dtype=torch.bool)
    valid[:, subset[0]] = True
    valid[::2, outside] = True
    out = multilabel_metrics(restrict_logits(logits, subset), target, valid)
    keys = ["real_top1", "vartopk_strict", "vartopk_partial", "asma", "map_macro", "map_micro"]
    keys += ["precision", "recall", "f1", "subset_accuracy", "hamming_loss", "ece_multilabel"]
    assert all(math.isfinite(out[k]) for k in keys), out
    assert single_label_metrics(restrict_logits(logits, subset), target)["nll"] < math.inf
    assert out["vartopk_strict@labels=2"] == 0.0  # the outside label is never ranked


@pytest.mark.slow
@pytest.mark.skipif(not sample_available(), reason="needs ../shared/data/imagenet-sample")
def test_evaluate_on_a_200_class_subset_of_the_real_sample(tmp_path: Path, compose_cfg) -> None:
    """End to end, real weights: ``data=imagenet_a`` on one real photo of each of its 200
    classes; the run's top-1 is the NumPy argmax of its saved logits masked to the 200."""
    from imagenet_multilabel.runs.rundir import RunDir
    from imagenet_multilabel.tasks.evaluate import evaluate

    root = sample_arrangement(tmp_path / "imagenet-a", "imagenet_a")
    cfg = compose_cfg("data=imagenet_a", f"data.root={root}", "batch_size=50")
    evaluate(cfg)
    run = RunDir(cfg.paths.output_dir)
    preds = run.predictions("imagenet_a")
    subset = sorted(_timm_indices("imagenet_a"))
    assert run.info["datasets"]["imagenet_a"]["class_subset"] == subset
    logits = preds["logits"].astype(np.float64)
    assert logits.shape == (200, 1000)
    masked = np.full_like(logits, -np.inf)
    masked[:, subset] = logits[:, subset]
    reference = 100.0 * np.mean(masked.argmax(axis=1) == preds["target"])
    top1 = run.metrics["imagenet_a"]["top1"]
    assert top1 == pytest.approx(reference, abs=1e-9)
    unrestricted = 100.0 * np.mean(logits.argmax(axis=1) == preds["target"])
    assert top1 >= unrestricted
    print(f"imagenet_a, 200 sample photos: top1 {top1:.1f} (1000-class argmax {unrestricted:.1f})")
