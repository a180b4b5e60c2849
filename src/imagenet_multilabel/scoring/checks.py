"""Checks of ``optimized_metric`` (the metric a run returns to Hydra's sweepers): its form
from the config alone, then, before a run works, that it is one of the metrics the run
will write, and, before results are written, one it wrote. Imports no torch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from imagenet_multilabel.core.errors import SweepError, UserError
from imagenet_multilabel.scoring.metrics.catalog import check_metric_name, head_prefixes
from imagenet_multilabel.scoring.metrics.names import KEY_SEP, metric_key, split_metric_key


def metric_prefixes(head: Mapping[str, Any] | None, stages: Sequence[str] = ("",)) -> list[str]:
    """What may come before a metric's name in a key: the heads' prefixes, after a stage
    (train.py's ``finetuned.``)."""
    return [s + p for s in stages for p in ("", *head_prefixes(head))]


def check_optimized_metric_form(name: object, prefixes: Sequence[str] | None = ("",)) -> None:
    """``optimized_metric`` is null or ``<dataset>/<metric>`` (from the config alone), the
    metric a declared one after one of ``prefixes`` (None: not checked here)."""
    if name is not None and (not isinstance(name, str) or name.count(KEY_SEP) != 1):
        raise UserError(
            f"optimized_metric={name!r} is not a metric name: give <dataset>/<metric>, "
            "e.g. demo/top1"
        )
    if name is not None and prefixes is not None:
        metric = split_metric_key(name)[1]
        check_metric_name(f"optimized_metric={name}", metric, prefixes, sweep=True)


def check_optimized_metric_name(
    name: str | None, datasets: Mapping[str, bool], single: set[str], multi: set[str]
) -> None:
    """Before a run works: ``optimized_metric`` names one of the metrics it will write,
    given its datasets (name -> has a label set) and the metric names the heads write
    without and with a label set (Scorer.metric_names)."""
    if not name:
        return
    expected = {
        metric_key(dataset, m)
        for dataset, labelled in datasets.items()
        for m in (multi if labelled else single)
    }
    if name not in expected:
        example = next(iter(sorted(expected)), "-")
        raise SweepError(
            f"optimized_metric={name!r} is not among the metrics this run writes (e.g. {example!r})"
        )


def check_optimized_metric(metrics: Mapping[str, float], name: str | None) -> None:
    """``optimized_metric`` names one of the run's metrics (checked before results are
    written; the entry point then returns that value to Hydra's sweepers)."""
    if name and name not in metrics:
        example = next(iter(metrics), "-")
        raise SweepError(
            f"optimized_metric={name!r} is not among this run's metrics (e.g. {example!r})"
        )
