"""What every figure of the reports shares: matplotlib (imported on first use, headless),
file-name slugs, and the names rows and datasets are shown under."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from imagenet_multilabel.reports.leaderboard import Leaderboard
from imagenet_multilabel.reports.leaderboard_rows import Row


def pyplot():
    """matplotlib.pyplot with the headless Agg backend (imported here on first use: the
    commands that draw nothing never load matplotlib)."""
    import matplotlib  # matplotlib: on first use only (see the docstring)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after matplotlib.use("Agg")

    return plt


def slug(text: str) -> str:
    """``text`` as a file-name part."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


def dataset_classes(board: Leaderboard) -> dict[str, str]:
    """Each dataset's class as run.json records it (``ImageNetValDataset``, ...)."""
    classes: dict[str, str] = {}
    for row in board.rows:
        for dataset, record in row.records.items():
            classes.setdefault(dataset, str(record.get("class")))
    return classes


def row_name(row: Row) -> str:
    return row.model + (f" [{row.label}]" if row.label else "")


def _pp_text(key: str, value: Any) -> str:
    if key == "input_size" and isinstance(value, Sequence) and value:
        return f"{value[-1]}px"
    if key == "crop_pct" and isinstance(value, (int, float)):
        return f"crop {value:g}"
    if key in ("interpolation", "crop_mode"):
        return str(value)
    return f"{key}={value}"


def row_names(rows: Sequence[Row]) -> list[str]:
    """A name per row: the model (and its settings label); rows that share one, as a model
    at several input sizes, get the preprocessing that tells them apart
    (``tf_efficientnet_lite0 160px``)."""
    names = [row_name(r) for r in rows]
    for name in set(names):
        same = [i for i, n in enumerate(names) if n == name]
        if len(same) < 2:
            continue
        pps = [rows[i].preprocessing or {} for i in same]
        keys = [
            k
            for k in dict.fromkeys(k for pp in pps for k in pp)
            if len({repr(pp.get(k)) for pp in pps}) > 1
        ]
        for i, pp in zip(same, pps, strict=True):
            if keys:
                names[i] += " " + ", ".join(_pp_text(k, pp.get(k)) for k in keys)
    return names
