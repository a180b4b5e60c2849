"""The ImageNet-testbed picture of a sweep (Taori et al. 2020, "Measuring robustness to
natural distribution shifts in image classification"; Miller et al. 2021, "Accuracy on the
line"): for each variant dataset, every model's accuracy on it against its accuracy on the
reference dataset (ImageNet val), both on logit axes, with a line fitted by least squares
in logit space over the models; and the wide model x dataset table with each model's
*effective robustness* on each variant: its accuracy there minus the line's prediction at
its reference accuracy, in points (above the line: +).

Per metric (top1; real_top1 and asma where the reference and a variant have them):
``testbed_<metric>.png`` (one panel per variant; its legend names every model up to 20 of
them, beyond that the best and worst 10 on the reference, the others drawn small and grey)
and ``variants_<metric>.md`` / ``.csv`` (every model).

ImageNet-C: where the datasets of a sweep (named ``imagenet_c-<corruption>-<severity>``, as
``data=imagenet_c`` names them) cover all 15 corruptions of the benchmark, they are shown as
one variant, :data:`IMAGENET_C_MEAN`: per model the mean over the 15 corruptions of each
corruption's mean over its severities (a model missing a corruption has no value); the
single corrupted datasets then leave the figure and the table.

Accuracies of 0% and 100% have no logit: every accuracy is clipped to
[:data:`CLIP`, 100 - :data:`CLIP`] % before the logit (for the axes and the fit; effective
robustness subtracts the prediction from the unclipped accuracy). A line is fitted from
:data:`MIN_FIT` models on.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imagenet_multilabel.core.errors import DataError, one_line
from imagenet_multilabel.core.files import atomic_write_bytes
from imagenet_multilabel.data.datasets.corruptions import BENCHMARK
from imagenet_multilabel.reports.at_scale import figure_rows
from imagenet_multilabel.reports.leaderboard import Leaderboard
from imagenet_multilabel.reports.leaderboard_markdown import input_text
from imagenet_multilabel.reports.leaderboard_rows import Row
from imagenet_multilabel.reports.plotting import dataset_classes, pyplot, row_names, slug
from imagenet_multilabel.scoring.metrics.names import metric_key

log = logging.getLogger(__name__)

METRICS = ("top1", "real_top1", "asma")
IMAGENET_C_MEAN = "imagenet_c (mean of 15)"
_IMAGENET_C = re.compile(r"imagenet_c-(\w+)-([1-5])")
CLIP = 0.1  # percent: 0% is drawn and fitted at 0.1%, 100% at 99.9%
MIN_FIT = 3
# tick sets for the logit axes (percent), from fine to coarse: the first with at most
# MAX_TICKS inside a panel's range is used
TICKS = (
    (0.1, 0.2, 0.5, 1, 2, 5, *range(10, 95, 5), 95, 98, 99, 99.5, 99.8, 99.9),
    (0.1, 0.2, 0.5, 1, 2, 5, *range(10, 95, 10), 95, 98, 99, 99.5, 99.8, 99.9),
    (0.1, 1, 5, 10, 25, 50, 75, 90, 95, 99, 99.9),
    (0.1, 1, 10, 50, 90, 99, 99.9),
)
MAX_TICKS = 7
MARKERS = "osD^vPX*<>ph"


def logit(accuracy: float | Sequence[float] | np.ndarray) -> np.ndarray:
    """log(p / (1 - p)) of accuracies in percent, clipped to [CLIP, 100 - CLIP]."""
    p = np.clip(np.asarray(accuracy, dtype=float), CLIP, 100 - CLIP) / 100
    return np.log(p / (1 - p))


def expit(z: float | np.ndarray) -> np.ndarray:
    """The inverse of :func:`logit`, in percent."""
    return 100 / (1 + np.exp(-np.asarray(z, dtype=float)))


@dataclass(frozen=True)
class Fit:
    """logit(variant) = slope * logit(reference) + intercept, over ``n`` models; ``r2`` in
    logit space (NaN when every model has the same variant accuracy)."""

    slope: float
    intercept: float
    r2: float
    n: int

    def predict(self, reference: float | np.ndarray) -> np.ndarray:
        """The line's variant accuracy (%) at reference accuracies (%)."""
        return expit(self.slope * logit(reference) + self.intercept)

    def describe(self) -> str:
        r2 = "n/a" if math.isnan(self.r2) else f"{self.r2:.3f}"
        return f"slope {self.slope:.3f}, intercept {self.intercept:+.3f}, R² {r2} (n={self.n})"


def fit_logit(reference: Sequence[float], variant: Sequence[float]) -> Fit | None:
    """The least-squares line through (logit(reference), logit(variant)) of the models
    that have both; None with fewer than MIN_FIT of them or one reference accuracy for
    all (no line is determined)."""
    x, y = np.asarray(reference, dtype=float), np.asarray(variant, dtype=float)
    both = np.isfinite(x) & np.isfinite(y)
    if both.sum() < MIN_FIT:
        return None
    x, y = logit(x[both]), logit(y[both])
    dx, dy = x - x.mean(), y - y.mean()
    sxx = float(dx @ dx)
    if sxx <= 1e-12 * max(1.0, float(x @ x)):
        return None
    slope = float(dx @ dy) / sxx
    intercept = float(y.mean() - slope * x.mean())
    residual = y - (slope * x + intercept)
    total = float(dy @ dy)
    r2 = 1 - float(residual @ residual) / total if total > 0 else math.nan
    return Fit(slope, intercept, r2, int(both.sum()))


def effective_robustness(
    fit: Fit | None, reference: Sequence[float], variant: Sequence[float]
) -> np.ndarray:
    """Variant accuracy minus the line's prediction at each reference accuracy (points);
    NaN without a fit or a value."""
    variant = np.asarray(variant, dtype=float)
    if fit is None:
        return np.full(variant.shape, math.nan)
    return variant - fit.predict(np.asarray(reference, dtype=float))


def reference_dataset(board: Leaderboard, reference: str | None = None) -> str:
    """The dataset the variants are plotted against: ``reference`` if given, else ImageNet
    val (without a class subset first), else the leaderboard's first dataset."""
    if reference is not None:
        if reference not in board.datasets:
            raise DataError(
                f"no run has the reference dataset '{reference}' (there are {board.datasets})"
            )
        return reference
    classes = dataset_classes(board)
    val = [d for d in board.datasets if classes.get(d) == "ImageNetValDataset"]
    subsets = {d for r in board.rows for d, rec in r.records.items() if rec.get("class_subset")}
    whole = [d for d in val if d not in subsets]
    return (whole or val or board.datasets)[0]


@dataclass
class Testbed:
    """One metric's picture: the models (rows), their accuracies, a fit per variant."""

    metric: str
    reference: str
    variants: list[str]
    rows: list[Row]
    names: list[str]
    fits: dict[str, Fit | None]
    corrupted: dict[str, list[str]] | None = None  # ImageNet-C: corruption -> its datasets

    def values(self, dataset: str) -> np.ndarray:
        if dataset == IMAGENET_C_MEAN and self.corrupted:
            return imagenet_c_mean(self.rows, self.metric, self.corrupted)
        return np.array([r.value(metric_key(dataset, self.metric)) for r in self.rows])

    def effective(self, variant: str) -> np.ndarray:
        return effective_robustness(
            self.fits[variant], self.values(self.reference), self.values(variant)
        )


def imagenet_c_datasets(datasets: Sequence[str]) -> dict[str, list[str]] | None:
    """The ImageNet-C datasets by corruption, when they cover all 15 of the benchmark."""
    found: dict[str, list[str]] = {}
    for d in datasets:
        match = _IMAGENET_C.fullmatch(d)
        if match and match.group(1) in BENCHMARK:
            found.setdefault(match.group(1), []).append(d)
    return found if set(found) == set(BENCHMARK) else None


def imagenet_c_mean(
    rows: Sequence[Row], metric: str, corrupted: dict[str, list[str]]
) -> np.ndarray:
    """Per row: the mean over the corruptions of each one's mean over the severities the
    row has; NaN when the row has none of some corruption."""
    out = []
    for r in rows:
        per = []
        for datasets in corrupted.values():
            values = [r.value(metric_key(d, metric)) for d in datasets]
            values = [v for v in values if math.isfinite(v)]
            per.append(float(np.mean(values)) if values else math.nan)
        out.append(float(np.mean(per)))
    return np.array(out)


def build_testbed(board: Leaderboard, metric: str, reference: str) -> Testbed | None:
    """The picture of ``metric``: variants are the other datasets where some model has
    ``metric`` on both, models sorted by their reference accuracy; None if there is no
    variant."""
    rows = [r for r in board.rows if r.done]
    ref = np.array([r.value(metric_key(reference, metric)) for r in rows])
    corrupted = imagenet_c_datasets([d for d in board.datasets if d != reference])
    if corrupted is not None and np.any(
        np.isfinite(ref) & np.isfinite(imagenet_c_mean(rows, metric, corrupted))
    ):
        single = {d for ds in corrupted.values() for d in ds}
        candidates = [d for d in board.datasets if d not in single] + [IMAGENET_C_MEAN]
    else:
        corrupted, candidates = None, list(board.datasets)
    probe = Testbed(metric, reference, [], rows, [], {}, corrupted)
    variants = [
        d
        for d in candidates
        if d != reference and np.any(np.isfinite(ref) & np.isfinite(probe.values(d)))
    ]
    if not variants:
        return None
    datasets = [reference, *variants]
    probe.variants = variants
    finite = np.column_stack([np.isfinite(probe.values(d)) for d in datasets]).any(axis=1)
    keep = [r for r, f in zip(rows, finite, strict=True) if f]
    # best on the reference first; models without it last, in the leaderboard's order
    keep.sort(key=lambda r: -np.nan_to_num(r.value(metric_key(reference, metric)), nan=-np.inf))
    tb = Testbed(metric, reference, variants, keep, row_names(keep), {}, corrupted)
    tb.fits = {v: fit_logit(tb.values(reference), tb.values(v)) for v in variants}
    return tb


# ------------------------------------------------------------------------------ figure


def _ticks(lo: float, hi: float) -> list[float]:
    """Percent ticks inside the logit range [lo, hi]."""
    inside = []
    for ticks in TICKS:
        inside = [t for t in ticks if lo <= logit(t) <= hi]
        if len(inside) <= MAX_TICKS:
            break
    return inside


def _no_fit_reason(x: np.ndarray, y: np.ndarray) -> str:
    n = int((np.isfinite(x) & np.isfinite(y)).sum())
    if n < MIN_FIT:
        return f"no fit: {n} model{'s' if n != 1 else ''} (a line needs {MIN_FIT})"
    return "no fit: every model has the same reference accuracy"


def _frac(z: float | np.ndarray) -> np.ndarray:
    """A logit as the fraction matplotlib's logit scale plots."""
    return expit(z) / 100


OTHERS = ("0.72", "o")  # the colour and marker of the models the legend does not name


def legend_entries(tb: Testbed) -> dict[str, int]:
    """The testbed legend's entries: label -> row position (best on the reference first).
    Every model up to ``2 * FIGURE_ROWS`` of them; beyond, the best and worst
    ``FIGURE_ROWS`` (as the per-model figures show them: at_scale.py) and one entry, at
    -1, for the others, drawn small and grey (a legend of hundreds of rows is unreadable)."""
    shown, _ = figure_rows(list(range(len(tb.rows))))
    entries = {tb.names[i]: i for i in shown}
    if len(shown) < len(tb.rows):
        entries[f"{len(tb.rows) - len(shown)} other models"] = -1
    return entries


def plot_testbed(tb: Testbed, path: Path) -> Path:
    """One panel per variant: reference accuracy (x) against variant accuracy (y), logit
    axes ticked in %, a point per model, y = x and the fitted line with its numbers; the
    legend names at most ``2 * FIGURE_ROWS`` models (:func:`legend_entries`)."""
    # matplotlib: only when a figure is drawn
    from matplotlib.lines import Line2D

    plt = pyplot()
    n = len(tb.variants)
    cols = min(n, 3)
    grid = math.ceil(n / cols)
    fig, axes = plt.subplots(
        grid, cols, figsize=(4.4 * cols + 2.5, 5.4 * grid), squeeze=False, layout="constrained"
    )
    named = legend_entries(tb)
    colors = plt.get_cmap("tab10").colors
    shown = [i for i in named.values() if i >= 0]
    styles = {i: (colors[k % 10], MARKERS[k % len(MARKERS)]) for k, i in enumerate(shown)}
    clipped = False
    for ax, variant in zip(axes.flat, tb.variants, strict=False):
        clipped |= _panel(ax, tb, variant, styles)
    for ax in list(axes.flat)[n:]:
        ax.set_axis_off()
    handles = [
        Line2D([], [], marker=m, color=c, linestyle="none", markersize=7 if i in styles else 4)
        for i, (c, m) in ((i, styles.get(i, OTHERS)) for i in named.values())
    ]
    which = "" if len(shown) == len(tb.rows) else f": {figure_rows(tb.rows)[1]}"
    fig.legend(
        handles,
        list(named),
        loc="outside right center",
        fontsize=8,
        frameon=False,
        title=f"models{which}\n(by {tb.reference} {tb.metric})" if which else "models",
        title_fontsize=8,
    )
    title = f"{tb.metric}: each variant against {tb.reference} (logit axes)"
    if clipped:
        title += f"\n0% and 100% are drawn at {CLIP:g}% and {100 - CLIP:g}%"
    fig.suptitle(title, fontsize=11, y=1.04 if clipped else 1.02)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def _panel(ax, tb: Testbed, variant: str, styles: dict[int, tuple]) -> bool:
    """One variant's panel (``styles``: row position -> colour and marker of the models
    the legend names; the others small and grey); whether an accuracy was clipped."""
    # matplotlib: only when a figure is drawn
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    x_all, y_all = tb.values(tb.reference), tb.values(variant)
    both = np.isfinite(x_all) & np.isfinite(y_all)
    x, y = x_all[both], y_all[both]
    clipped = bool(np.any((x < CLIP) | (x > 100 - CLIP) | (y < CLIP) | (y > 100 - CLIP)))
    zx, zy = logit(x), logit(y)
    lo, hi = float(min(zx.min(), zy.min())), float(max(zx.max(), zy.max()))
    pad = max(0.4, 0.12 * (hi - lo))
    lo, hi = lo - pad, hi + pad
    line = np.linspace(lo, hi, 50)
    ax.plot(_frac(line), _frac(line), "--", color="grey", linewidth=1, label="y = x")
    fit = tb.fits[variant]
    if fit is not None:
        ax.plot(
            _frac(line),
            _frac(fit.slope * line + fit.intercept),
            "-",
            color="black",
            linewidth=1.2,
            label=f"fit in logit space:\n{fit.describe()}",
        )
    else:
        ax.plot([], [], " ", label=_no_fit_reason(x_all, y_all))
    for i, xi, yi in zip(np.flatnonzero(both).tolist(), zx, zy, strict=True):
        color, marker = styles.get(i, OTHERS)
        size, z = (7, 3) if i in styles else (4, 2)
        ax.plot(_frac(xi), _frac(yi), marker, color=color, ms=size, ls="none", zorder=z)
    for axis, setter in ((ax.xaxis, ax.set_xscale), (ax.yaxis, ax.set_yscale)):
        setter("logit")
        axis.set_major_locator(FixedLocator([t / 100 for t in _ticks(lo, hi)]))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:g}%"))
        axis.set_minor_locator(NullLocator())
    ax.set_xlim(_frac(lo), _frac(hi))
    ax.set_ylim(_frac(lo), _frac(hi))
    ax.set_aspect("equal")
    ax.grid(True, color="0.9")
    ax.set_title(variant, fontsize=10)
    ax.set_xlabel(f"{tb.reference} {tb.metric}")
    ax.set_ylabel(f"{variant} {tb.metric}")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=8, frameon=False)
    return clipped


# ------------------------------------------------------------------------------ tables


def _columns(tb: Testbed) -> list[str]:
    return [tb.reference, *tb.variants] + [f"ER {v}" for v in tb.variants]


def table_values(tb: Testbed) -> list[list[float]]:
    """Per row: the metric on the reference and each variant, then each variant's
    effective robustness (NaN where missing)."""
    values = [tb.values(tb.reference)] + [tb.values(v) for v in tb.variants]
    values += [tb.effective(v) for v in tb.variants]
    return [[float(col[i]) for col in values] for i in range(len(tb.rows))]


def to_csv(tb: Testbed) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["model", "settings", "img_size", "crop_pct", "interpolation", *_columns(tb)])
    for row, values in zip(tb.rows, table_values(tb), strict=True):
        pp = row.preprocessing or {}
        writer.writerow(
            [
                row.model,
                row.label,
                (pp.get("input_size") or [None])[-1],
                pp.get("crop_pct"),
                pp.get("interpolation"),
                *("" if math.isnan(v) else repr(v) for v in values),
            ]
        )
    return buf.getvalue()


def _fmt(value: float, signed: bool = False) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def to_markdown(tb: Testbed) -> str:
    lines = [
        f"# {tb.metric}: each variant against {tb.reference}",
        "",
        f"Lines fitted by least squares over the models in logit space: "
        f"logit(variant) = slope x logit({tb.reference}) + intercept (accuracies clipped to "
        f"[{CLIP:g}, {100 - CLIP:g}] % first; a line needs {MIN_FIT} models). *ER*: effective "
        "robustness, the model's variant accuracy minus the line at its reference accuracy "
        "(points).",
        "",
        "| variant | models | slope | intercept | R² |",
        "|---|---:|---:|---:|---:|",
    ]
    for variant in tb.variants:
        fit = tb.fits[variant]
        if fit is None:
            x, y = tb.values(tb.reference), tb.values(variant)
            lines.append(
                f"| {variant} | {int((np.isfinite(x) & np.isfinite(y)).sum())} | "
                f"{_no_fit_reason(x, y)} | | |"
            )
        else:
            r2 = "-" if math.isnan(fit.r2) else f"{fit.r2:.3f}"
            lines.append(f"| {variant} | {fit.n} | {fit.slope:.3f} | {fit.intercept:+.3f} | {r2} |")
    labels = any(r.label for r in tb.rows)
    head = ["model"] + (["settings"] if labels else []) + ["input", *_columns(tb)]
    lines += ["", "| " + " | ".join(head) + " |"]
    lines.append(
        "|" + "|".join("---" if h in ("model", "settings", "input") else "---:" for h in head) + "|"
    )
    width = 1 + len(tb.variants)
    for row, values in zip(tb.rows, table_values(tb), strict=True):
        cells = [row.model] + ([row.label] if labels else []) + [input_text(row.preprocessing)]
        cells += [_fmt(v) for v in values[:width]] + [_fmt(v, True) for v in values[width:]]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def write_testbed(
    board: Leaderboard, folder: str | Path, reference: str | None = None
) -> tuple[list[Path], list[str]]:
    """testbed_<metric>.png and variants_<metric>.md / .csv for each metric the reference
    and a variant have, into ``folder``; returns the files and notes (why there are none)."""
    folder = Path(folder)
    if len(board.datasets) < 2:
        log.info("no testbed figures: the runs have one dataset (%s)", ", ".join(board.datasets))
        return [], []
    try:
        reference = reference_dataset(board, reference)
    except DataError as e:
        return [], [f"no testbed figures: {one_line(e)}"]
    written: list[Path] = []
    for metric in METRICS:
        tb = build_testbed(board, metric, reference)
        if tb is None:
            if metric == "top1":
                return [], [f"no testbed figures: no model has top1 on {reference} and a variant"]
            continue
        name = slug(metric)
        written.append(plot_testbed(tb, folder / f"testbed_{name}.png"))
        for suffix, text in ((".md", to_markdown(tb)), (".csv", to_csv(tb))):
            path = folder / f"variants_{name}{suffix}"
            atomic_write_bytes(path, text.encode())
            written.append(path)
    return written, []
