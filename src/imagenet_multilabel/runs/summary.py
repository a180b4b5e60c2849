"""Human-readable summaries printed at the end of a run."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from rich.console import Console
from rich.table import Table

from imagenet_multilabel.scoring.metrics.catalog import BY_NAME, summary_metrics


def summary_table(per_dataset: Mapping[str, Mapping[str, float]], title: str) -> Table:
    """Metrics as rows, datasets as columns (stays narrow however many metrics there are):
    the metrics declared for the summary (:mod:`~..scoring.metrics.catalog`), in their
    order and display."""
    table = Table(title=title)
    table.add_column("metric")
    for name in per_dataset:
        table.add_column(name, justify="right")
    keys = [k for k in summary_metrics() if any(k in m for m in per_dataset.values())]
    for key in keys:
        shown = BY_NAME[key].format
        table.add_row(key, *(shown(metrics.get(key)) for metrics in per_dataset.values()))
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
