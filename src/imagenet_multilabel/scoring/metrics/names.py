"""Metric names: the one place where the composite keys of metrics.json are built.

Every metrics.json key is ``<dataset>/<metric>`` (train.py's ``<set>/<stage>.<metric>``):
:func:`metric_key` builds it and :func:`split_metric_key` takes it apart, everywhere.
Label-count subgroups are the images with 1, 2, 3 and 4 or more valid labels; their
metrics are named ``<metric>@labels=<g>`` (``num_images@labels=2``, ``top1@labels=4+``).
The uncertainty view names ``confident_errors_valid@p>=<t>`` by its top-1 score threshold.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from imagenet_multilabel.core.errors import DataError

KEY_SEP = "/"  # between the dataset and the metric of a metrics.json key
LABEL_GROUPS: tuple[str, ...] = ("1", "2", "3", "4+")
SUBGROUP_COUNT = "num_images"  # images per subgroup
SUBGROUP_ACCURACIES: tuple[str, ...] = ("top1", "real_top1", "vartopk_strict")
# top-1 against the annotated main object, for label sets that name one (Tsipras et al.)
MAIN_TOP1 = "main_top1"


def metric_key(dataset: str, metric: str) -> str:
    """The metrics.json key of ``metric`` on ``dataset``: ``<dataset>/<metric>``."""
    return f"{dataset}{KEY_SEP}{metric}"


def split_metric_key(key: str) -> tuple[str, str]:
    """``<dataset>/<metric>`` -> ``(dataset, metric)``; the metric is empty for a key
    without the separator (``is_metric_key`` tells)."""
    dataset, _, metric = key.partition(KEY_SEP)
    return dataset, metric


def is_metric_key(key: str) -> bool:
    """Whether ``key`` has the ``<dataset>/<metric>`` form (a separator in it)."""
    return KEY_SEP in key


def subgroup(metric: str, group: str) -> str:
    """Key of ``metric`` over label-count subgroup ``group`` (one of :data:`LABEL_GROUPS`)."""
    return f"{metric}@labels={group}"


def confident_errors(threshold: float) -> str:
    """Key of the share of confident errors (top-1 score ``>= threshold``) whose top-1 is a
    valid label."""
    return f"confident_errors_valid@p>={threshold:g}"


def is_count(name: str) -> bool:
    """Whether metric ``name`` counts images (``num_*``) rather than measuring a share."""
    return name.startswith("num_")


def flatten_metrics(per_dataset: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """``{dataset: {metric: value}}`` -> ``{"<dataset>/<metric>": value}``, the one format of
    metrics.json (a single-dataset run too). A dataset name with the separator in it, or a
    key that two entries would share, is an error rather than a silent overwrite."""
    flat: dict[str, float] = {}
    for dataset, metrics in per_dataset.items():
        if not dataset or KEY_SEP in dataset:
            raise ValueError(f"dataset name {dataset!r} must be non-empty and have no '/'")
        for metric, value in metrics.items():
            key = metric_key(dataset, metric)
            if key in flat:
                raise ValueError(f"metric key {key!r} written twice")
            flat[key] = value
    return flat


def unflatten_metrics(flat: Mapping[str, Any], source: str | Path = "metrics") -> dict[str, dict]:
    """The inverse of :func:`flatten_metrics`; a key without a dataset is a DataError."""
    per_dataset: dict[str, dict[str, Any]] = {}
    for key, value in flat.items():
        dataset, metric = split_metric_key(key)
        if not is_metric_key(key) or not dataset or not metric:
            raise DataError(
                f"{source}: key {key!r} is not '<dataset>/<metric>' (written by an older "
                "version: run it again)"
            )
        per_dataset.setdefault(dataset, {})[metric] = float("nan") if value is None else value
    return per_dataset
