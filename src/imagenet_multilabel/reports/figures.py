"""The paper's figures (matplotlib PNGs), for a sweep's leaderboard and for one run.

- ``benchmarks.png``: per model, dataset A (ImageNet val) beside dataset B (ImageNetV2)
  under top1, real_top1 and asma;
- ``label_counts_<dataset>.png``: accuracy per label-count subgroup (1, 2, 3, 4+ valid
  labels), one bar per model, under top1, real_top1 and vartopk_strict;
- ``gap.png`` and ``gap.md``: for each model with both datasets, the A -> B gap split into
  what B's label-count mix explains and the residual (``analysis.reweighting.explain_gap``),
  and ``gap_<model>.png``, that model's per-label-count accuracies and label-count shares
  (``analysis.reweighting.plot_gap``);
- ``testbed_<metric>.png``, ``variants_<metric>.md`` / ``.csv``: each variant against a
  reference dataset on logit axes, and the table with effective robustness (:mod:`.testbed`).

A and B are ImageNet val and ImageNetV2 where the sweep has both, else its two datasets
(with more, none: pass ``pair``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from imagenet_multilabel.core.errors import DataError
from imagenet_multilabel.core.files import atomic_write_bytes
from imagenet_multilabel.reports.analysis.reweighting import (
    explain_gap,
    gap_markdown,
    plot_gap,
    subgroup_weights,
)
from imagenet_multilabel.reports.at_scale import figure_rows
from imagenet_multilabel.reports.leaderboard import Leaderboard
from imagenet_multilabel.reports.leaderboard_rows import Row
from imagenet_multilabel.reports.plotting import dataset_classes, pyplot, row_name, row_names, slug
from imagenet_multilabel.reports.testbed import write_testbed
from imagenet_multilabel.scoring.metrics.names import LABEL_GROUPS as GROUPS
from imagenet_multilabel.scoring.metrics.names import SUBGROUP_ACCURACIES as GAP_METRICS
from imagenet_multilabel.scoring.metrics.names import SUBGROUP_COUNT, subgroup

log = logging.getLogger(__name__)

PAIR_METRICS = ("top1", "real_top1", "asma")


def _value(metrics: Mapping[str, float] | None, key: str) -> float:
    value = (metrics or {}).get(key)
    return math.nan if value is None else float(value)


def has_subgroups(metrics: Mapping[str, float] | None) -> bool:
    return any(_value(metrics, subgroup(SUBGROUP_COUNT, g)) > 0 for g in GROUPS)


def _bars(ax, labels: Sequence[str], series: Mapping[str, Sequence[float]], ylabel: str) -> None:
    """Grouped bars: one group per label, one bar per series."""
    n = max(1, len(series))
    width = 0.8 / n
    for i, (name, values) in enumerate(series.items()):
        xs = [x - 0.4 + width * (i + 0.5) for x in range(len(labels))]
        ax.bar(xs, [0 if math.isnan(v) else v for v in values], width=width, label=name)
        for x, v in zip(xs, values, strict=True):
            if math.isnan(v):
                ax.text(x, 0, "n/a", ha="center", va="bottom", fontsize=7, rotation=90)
    ax.set_xticks(
        range(len(labels)),
        labels,
        rotation=30 if len(labels) > 3 else 0,
        ha="right" if len(labels) > 3 else "center",
    )
    ax.set_ylabel(ylabel)
    if len(series) > 1:
        ax.legend(fontsize=8)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    pyplot().close(fig)
    return path


def plot_label_counts(
    series: Mapping[str, Mapping[str, float]], title: str, path: Path
) -> Path | None:
    """Accuracy per label-count subgroup: one bar per series (models of a dataset, or
    datasets of a run) that has subgroups, one panel per metric; None if none has."""
    series = {name: m for name, m in series.items() if has_subgroups(m)}
    if not series:
        return None
    plt = pyplot()
    metrics = [m for m in GAP_METRICS if any(subgroup(m, "1") in s for s in series.values())]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.8), squeeze=False)
    labels = [f"{g}\n(n={_counts(series, g)})" for g in GROUPS]
    for ax, metric in zip(axes[0], metrics, strict=True):
        values = {n: [_value(m, subgroup(metric, g)) for g in GROUPS] for n, m in series.items()}
        _bars(ax, labels, values, f"{metric} (%)")
        ax.set(title=metric, xlabel="valid labels per image")
    fig.suptitle(title)
    return _save(fig, path)


def _counts(series: Mapping[str, Mapping[str, float]], group: str) -> str:
    counts = {int(_value(m, subgroup(SUBGROUP_COUNT, group)) or 0) for m in series.values()}
    return "/".join(str(c) for c in sorted(counts))


def benchmark_pair(board: Leaderboard, pair: Sequence[str] | None = None) -> tuple[str, str] | None:
    """The two datasets the pair figures compare (see the module docstring)."""
    if pair:
        a, b = pair
        missing = [d for d in (a, b) if d not in board.datasets]
        if missing:
            raise DataError(f"no run has dataset '{missing[0]}' (there are {board.datasets})")
        return a, b
    classes = dataset_classes(board)
    val = [d for d in board.datasets if classes.get(d) == "ImageNetValDataset"]
    v2 = [d for d in board.datasets if classes.get(d) == "ImageNetV2Dataset"]
    if val and v2:
        return val[0], v2[0]
    return tuple(board.datasets) if len(board.datasets) == 2 else None


def plot_pair(rows: Sequence[Row], a: str, b: str, path: Path) -> Path | None:
    """Per model, A beside B under top1, real_top1 and asma."""
    rows = [r for r in rows if a in r.metrics and b in r.metrics]
    if not rows:
        return None
    rows, which = figure_rows(rows)  # a readable figure also of hundreds of models
    plt = pyplot()
    if which:  # many bars: the three metrics one under the other
        fig, axes = plt.subplots(3, 1, figsize=(4 + 0.6 * len(rows), 13), squeeze=False)
        axes = axes.T
    else:
        fig, axes = plt.subplots(1, 3, figsize=(4 + 1.2 * len(rows) * 3, 4), squeeze=False)
    names = row_names(rows)
    for ax, metric in zip(axes[0], PAIR_METRICS, strict=True):
        series = {d: [_value(r.metrics[d], metric) for r in rows] for d in (a, b)}
        _bars(ax, names, series, f"{metric} (%)")
        ax.set(title=metric)
    fig.suptitle(f"{a} vs {b}" + (f" ({which} models, leaderboard order)" if which else ""))
    return _save(fig, path)


def plot_gaps(rows: Sequence[Row], a: str, b: str, folder: Path) -> tuple[list[Path], list[str]]:
    """gap.png (explained + residual per model and metric), gap_<model>.png and gap.md;
    returns the files and a note per model whose gap cannot be decomposed."""
    failures: dict[str, list[str]] = {}  # reason -> models
    decomposed, texts = [], []
    written: list[Path] = []
    for row in rows:
        if a not in row.metrics or b not in row.metrics:
            continue
        ma, mb = row.metrics[a], row.metrics[b]
        try:
            gaps = explain_gap(ma, mb, a, b)
        except DataError as e:
            failures.setdefault(str(e), []).append(row_name(row))
            continue
        decomposed.append((row, gaps))
        texts.append(
            f"## {row_name(row)}\n\n"
            + gap_markdown(gaps, a, b, subgroup_weights(ma, a), subgroup_weights(mb, b)).split(
                "\n", 1
            )[1]
        )
        written.append(plot_gap(ma, mb, a, b, folder / f"gap_{slug(row_name(row))}.png"))
    notes = [f"gap of {', '.join(models)}: {reason}" for reason, models in failures.items()]
    if not decomposed:
        return written, notes
    decomposed, _ = figure_rows(decomposed)  # gap.png: the first and last of many
    plt = pyplot()
    fig, axes = plt.subplots(
        1, len(GAP_METRICS), figsize=(4 + 1.4 * len(decomposed) * 3, 4), squeeze=False
    )
    names = [row_name(r) for r, _ in decomposed]
    for ax, metric in zip(axes[0], GAP_METRICS, strict=True):
        found = [next(g for g in gaps if g.metric == metric) for _, gaps in decomposed]
        explained = [g.explained or 0.0 for g in found]
        residual = [g.residual or 0.0 for g in found]
        xs = range(len(names))
        ax.bar(xs, explained, label="explained by label counts")
        ax.bar(xs, residual, bottom=explained, label="residual")
        ax.plot(xs, [g.gap for g in found], "k_", markersize=20, label="gap B - A")
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set_xticks(list(xs), names, rotation=30 if len(names) > 3 else 0)
        ax.set(title=metric, ylabel="points")
        ax.legend(fontsize=8)
    fig.suptitle(f"gap from {a} (A) to {b} (B)")
    written.insert(0, _save(fig, folder / "gap.png"))
    text = f"# Gap from {a} (A) to {b} (B), per model\n\n" + "\n".join(texts)
    atomic_write_bytes(folder / "gap.md", text.encode())
    written.append(folder / "gap.md")
    return written, notes


def write_figures(
    board: Leaderboard,
    folder: str | Path,
    pair: Sequence[str] | None = None,
    reference: str | None = None,
) -> tuple[list[Path], list[str]]:
    """Every figure the leaderboard's runs allow, into ``folder``; returns the files and
    notes on what could not be drawn. ``reference``: the testbed's reference dataset
    (:mod:`.testbed`; default ImageNet val, else the first dataset)."""
    folder = Path(folder)
    rows = [r for r in board.rows if r.done]
    written: list[Path] = []
    names = row_names(rows)
    for dataset in board.datasets:
        series = {n: r.metrics.get(dataset) for n, r in zip(names, rows, strict=True)}
        series = {n: m for n, m in series.items() if m is not None}
        path = plot_label_counts(
            series,
            f"accuracy per label count: {dataset}",
            folder / f"label_counts_{slug(dataset)}.png",
        )
        if path is not None:
            written.append(path)
    pair_files, notes = _pair_figures(board, rows, folder, pair)
    testbed_files, testbed_notes = write_testbed(board, folder, reference)
    return written + pair_files + testbed_files, notes + testbed_notes


def _pair_figures(
    board: Leaderboard, rows: Sequence[Row], folder: Path, pair: Sequence[str] | None
) -> tuple[list[Path], list[str]]:
    """benchmarks.png and the gap figures of the chosen pair of datasets."""
    chosen = benchmark_pair(board, pair)
    if chosen is None:
        if len(board.datasets) > 2:
            return [], [
                f"no pair figures: {len(board.datasets)} datasets and no ImageNet val + V2 pair"
            ]
        return [], []
    a, b = chosen
    written = []
    path = plot_pair(rows, a, b, folder / "benchmarks.png")
    if path is not None:
        written.append(path)
    gap_files, gap_notes = plot_gaps(rows, a, b, folder)
    return written + gap_files, gap_notes


def run_figures(metrics: Mapping[str, Mapping[str, float]], folder: Path, title: str) -> list[Path]:
    """One run's figures: its label-count plot, and its gap plot when it has exactly two
    datasets with label-count subgroups (a suite such as ImageNet val + ImageNetV2)."""
    out = []
    path = plot_label_counts(
        metrics, f"accuracy per label count: {title}", folder / "label_counts.png"
    )
    if path is not None:
        out.append(path)
    with_groups = [d for d, m in metrics.items() if has_subgroups(m)]
    if len(with_groups) == 2:
        a, b = with_groups
        try:
            explain_gap(metrics[a], metrics[b], a, b)
        except DataError as e:
            log.info("no gap plot for %s: %s", title, e)
        else:
            out.append(plot_gap(metrics[a], metrics[b], a, b, folder / "gap.png"))
    return out
