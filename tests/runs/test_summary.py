"""runs.summary: the end-of-run table, metrics as rows and datasets as columns, exactly as
it is printed and written to the run's log."""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path

from rich.console import Console

from imagenet_multilabel.runs.summary import print_summary, summary_table
from imagenet_multilabel.scoring.metrics.catalog import METRICS

PER_DATASET = {
    "val": {
        "num_images": 3,
        "top1": 66.666,
        "top5": 100.0,
        "nll": 0.12345,
        "ece": float("nan"),
        "real_top1": 50.0,
        "not_shown": 1.0,
    },
    "v2": {"num_images": 2, "top1": 50.0, "num_labeled": 2},
}

# counts as integers, nll with 3 decimals, the others with 2, "-" for missing or NaN; the
# rows in the table's order, only metrics some dataset has; the title centred over the table
TEXT = (
    " " * 9
    + "evaluate: tiny"
    + " " * 9
    + """
┏━━━━━━━━━━━━━┳━━━━━━━━┳━━━━━━━┓
┃ metric      ┃    val ┃    v2 ┃
┡━━━━━━━━━━━━━╇━━━━━━━━╇━━━━━━━┩
│ num_images  │      3 │     2 │
│ top1        │  66.67 │ 50.00 │
│ top5        │ 100.00 │     - │
│ nll         │  0.123 │     - │
│ ece         │      - │     - │
│ num_labeled │      - │     2 │
│ real_top1   │  50.00 │     - │
└─────────────┴────────┴───────┘
"""
)


def plain_text(table) -> str:
    with open(os.devnull, "w") as sink:
        console = Console(width=200, record=True, file=sink)
        console.print(table)
    return console.export_text()


def test_summary_table_cells() -> None:
    table = summary_table(PER_DATASET, "evaluate: tiny")
    assert [c.header for c in table.columns] == ["metric", "val", "v2"]
    rows = list(zip(*(c._cells for c in table.columns), strict=True))
    assert rows == [
        ("num_images", "3", "2"),
        ("top1", "66.67", "50.00"),
        ("top5", "100.00", "-"),
        ("nll", "0.123", "-"),
        ("ece", "-", "-"),
        ("num_labeled", "-", "2"),
        ("real_top1", "50.00", "-"),
    ]


def test_summary_table_text() -> None:
    assert plain_text(summary_table(PER_DATASET, "evaluate: tiny")) == TEXT


def test_print_summary_appends_the_plain_table_to_the_run_log(tmp_path: Path, capsys) -> None:
    log = tmp_path / "evaluate.log"
    log.write_text("earlier lines\n")
    handler = logging.FileHandler(log)
    logging.getLogger().addHandler(handler)
    try:
        print_summary(PER_DATASET, "evaluate: tiny")
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    assert log.read_text() == "earlier lines\n" + TEXT
    assert "num_labeled" in capsys.readouterr().out  # and printed to the terminal


def test_the_rows_are_the_declared_summary_metrics_shown_as_declared() -> None:
    """Every metric declared for the summary, and only those, in the catalog's order, each
    with its declared decimals (random values)."""
    rng = random.Random(0)
    values = {m.name: rng.uniform(0, 100) for m in METRICS}
    values.update({m.name: rng.randint(0, 10**6) for m in METRICS if m.unit == "count"})
    table = summary_table({"d": {**values, "not_declared": 1.0}}, "t")
    rows = list(zip(*(c._cells for c in table.columns), strict=True))
    want = [m for m in METRICS if m.summary]
    assert [r[0] for r in rows] == [m.name for m in want]
    for (_, cell), m in zip(rows, want, strict=True):
        v = values[m.name]
        assert cell == (str(v) if m.unit == "count" else f"{v:.{m.digits}f}"), m.name
