"""Human-readable summaries printed at the end of a run."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from rich.console import Console
from rich.table import Table

from imagenet_multilabel.scoring.metrics.names import SINGLE_METRICS, is_count

# Metrics shown in the end-of-run table, in this order, when present.
SUMMARY_METRICS = (
    "num_images",
    *SINGLE_METRICS,
    "num_labeled",
    "real_top1",
    "real_top5",
    "main_top1",
    "vartopk_strict",
    "vartopk_partial",
    "asma",
    "map_macro",
    "f1",
)


def _fmt(key: str, value: float | int | None) -> str:
    if value is None or value != value:  # missing or NaN
        return "-"
    return (
        f"{int(value)}" if is_count(key) else f"{value:.3f}" if key == "nll" else (f"{value:.2f}")
    )


def summary_table(per_dataset: Mapping[str, Mapping[str, float]], title: str) -> Table:
    """Metrics as rows, datasets as columns (stays narrow however many metrics there are)."""
    table = Table(title=title)
    table.add_column("metric")
    for name in per_dataset:
        table.add_column(name, justify="right")
    keys = [k for k in SUMMARY_METRICS if any(k in m for m in per_dataset.values())]
    for key in keys:
        table.add_row(key, *(_fmt(key, metrics.get(key)) for metrics in per_dataset.values()))
    return table


def print_summary(per_dataset: Mapping[str, Mapping[str, float]], title: str) -> None:
    """Print the table to the terminal and append it, as plain text, to the run's log file."""
    table = summary_table(per_dataset, title)
    Console().print(table)
    with open(os.devnull, "w") as sink:
        plain = Console(width=200, record=True, file=sink)
        plain.print(table)
    text = plain.export_text()
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.stream.write(text)
            handler.flush()
