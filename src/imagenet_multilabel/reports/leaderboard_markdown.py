"""leaderboard.md: the main metrics of each dataset (those the catalog declares for it),
timm's published numbers beside them, then the failed and incomplete jobs and the notes."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagenet_multilabel.reports.at_scale import short_note, summary_lines
from imagenet_multilabel.reports.leaderboard_rows import shorten
from imagenet_multilabel.scoring.metrics.catalog import declaration
from imagenet_multilabel.scoring.metrics.names import split_metric_key

if TYPE_CHECKING:
    from imagenet_multilabel.reports.leaderboard import Leaderboard

TEXT_COLUMNS = (
    "model",
    "weights",
    "settings",
    "labels",
    "input",
    "batch",
    "data read",
    "status",
)


def _fmt(value: Any, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:+.2f}" if signed else f"{value:.2f}"
    return str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def input_text(pp: Mapping[str, Any] | None) -> str:
    """A row's preprocessing in one cell: ``224 / 0.875 / bicubic`` (size, crop_pct,
    interpolation)."""
    if not pp:
        return "-"
    size = (pp.get("input_size") or [None])[-1]
    flip = " / hflip" if pp.get("hflip") else ""
    return f"{size} / {pp.get('crop_pct'):g} / {pp.get('interpolation')}{flip}"


def weights_text(weights: str | None, width: int = 40) -> str:
    """A row's weights in one cell: ``hub:timm/...``, ``none`` (random), or a checkpoint's
    path shortened to its end (``checkpoint:.../run/best.ckpt``)."""
    if not weights:
        return "-"
    kind, sep, where = weights.partition(":")
    if sep and kind in ("checkpoint", "fine-tuned") and len(weights) > width:
        return f"{kind}:{shorten(where, width - len(kind) - 1)}"
    return weights


def markdown(board: Leaderboard) -> str:
    """leaderboard.md's text: one row per row of ``board`` (rank, model, weights, settings
    and label origins where any row has them, input, parameters), each dataset's main
    metrics shown as the catalog declares (with timm's number, the difference and a flag
    beside those it publishes), speed, data read and status; then the failed and
    incomplete jobs and the notes."""
    columns = board.metric_columns(shown_only=True)
    compared = set(board.compared())
    labels = any(r.label for r in board.rows)
    origins = any(r.label_origins for r in board.rows)
    head = ["#", "model", "weights"] + (["settings"] if labels else [])
    head += ["labels"] if origins else []
    head += ["input", "params (M)", "batch"]
    for column in columns:
        dataset, metric = split_metric_key(column)
        head.append(column)
        if (dataset, metric) in compared:
            head += [f"{column} timm", "diff", "flag"]
    head += ["img/s", "data read", "status"]
    lines = [
        "# Leaderboard",
        "",
        f"{board.summary()}; sorted by {board.sort or 'model'}. *timm*: timm's published "
        "number for the same weights, benchmark and preprocessing; *flag*: |diff| over 0.3 "
        "points ((subset): the run covers part of the benchmark, so a difference is expected).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" if h in TEXT_COLUMNS else "---:" for h in head) + "|",
    ]
    summary = summary_lines(board)  # reports/at_scale.py: a large board's summary first
    if summary:
        lines[4:4] = summary
    for rank, row in enumerate(board.rows, start=1):
        inp = input_text(row.preprocessing)
        params = "-" if row.num_params is None else f"{row.num_params / 1e6:.2f}"
        cells = [str(rank) if row.done else "-", row.model, weights_text(row.weights)]
        cells += [row.label] if labels else []
        cells += [row.label_origins or "-"] if origins else []
        batch = "-" if row.batch_size is None else str(row.batch_size)
        if row.out_of_memory_at is not None:
            batch += f" (out of memory at {row.out_of_memory_at})"
        cells += [inp, params, batch]
        for column in columns:
            dataset, metric = split_metric_key(column)
            declared = declaration(metric)
            value = row.value(column)
            cells.append(declared.format(value) if declared else _fmt(value))
            if (dataset, metric) in compared:
                c = next((c for c in row.comparisons.get(dataset, []) if c.metric == metric), None)
                cells += (
                    ["-", "-", ""]
                    if c is None
                    else [_fmt(c.published), _fmt(c.diff, signed=True), c.flag]
                )
        status = row.status + (f": {row.error}" if row.failures else "")
        cells += [_fmt(row.images_per_second) if row.done else "-", row.data_read or "-", status]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    unfinished = [(r, f) for r in board.rows for f in r.failures + r.incomplete]
    if unfinished:
        lines += [
            "",
            "## Failed and incomplete jobs",
            "",
            "| model | datasets | job | reason |",
            "|---|---|---|---|",
        ]
        for row, f in unfinished:
            reason = f.get("error", "incomplete: stopped before it finished (run the sweep again)")
            lines.append(
                f"| {row.model} | {', '.join(f['datasets']) or '?'} | {Path(f['job']).name} | "
                f"{_cell(reason)} |"
            )
    if board.notes:
        lines += ["", "## Notes", ""] + [f"- {_cell(short_note(n))}" for n in board.notes]
    return "\n".join(lines) + "\n"
