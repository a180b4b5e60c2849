"""How much a result depends on its label set: the same predictions scored under several
label sets and operating points (``score labels=[real,tsipras]``,
``labels.min_score=[0.5,0.8,0.95]``).

:func:`sensitivity` takes the metrics of every (run, label set) and returns, for every
multi-label metric, its value under each label set and its range; with several runs, the
models' ranking under each label set (on the images every compared set labels), Kendall's
tau against the first set's ranking and the pairs of models that swap.
:func:`render_sensitivity` writes it as Markdown and :func:`plot_sensitivity` draws the
metric against the operating point.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

from imagenet_multilabel.reports.plotting import pyplot
from imagenet_multilabel.scoring.metrics.catalog import lower_is_better
from imagenet_multilabel.scoring.metrics.names import is_count, split_metric_key

# metrics drawn in the figure, where present (the rest are in the tables)
FIGURE_METRICS = ("real_top1", "vartopk_strict", "main_top1", "map", "subset_accuracy")

Metrics = Mapping[str, float]  # a flat metrics.json: "<dataset>/<metric>" -> value


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-b of two score lists (ties counted as neither concordant nor
    discordant, as scipy's ``kendalltau``); NaN when either list is constant."""
    concordant = discordant = ties_a = ties_b = 0
    for i, j in combinations(range(len(a)), 2):
        da, db = a[i] - a[j], b[i] - b[j]
        if da == 0 and db == 0:
            continue
        if da == 0:
            ties_a += 1
        elif db == 0:
            ties_b += 1
        elif (da > 0) == (db > 0):
            concordant += 1
        else:
            discordant += 1
    denom = math.sqrt((concordant + discordant + ties_a) * (concordant + discordant + ties_b))
    return (concordant - discordant) / denom if denom else float("nan")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def swapped_pairs(
    runs: Sequence[str], reference: Sequence[float], other: Sequence[float], lower: bool
) -> list[tuple[str, str]]:
    """The pairs ``(a, b)`` with ``a`` ahead of ``b`` under ``reference`` and behind it
    under ``other`` (ties are no swap)."""
    sign = -1 if lower else 1
    out = []
    for i, j in combinations(range(len(runs)), 2):
        d_ref, d_other = sign * (reference[i] - reference[j]), sign * (other[i] - other[j])
        if d_ref * d_other < 0:
            out.append((runs[i], runs[j]) if d_ref > 0 else (runs[j], runs[i]))
    return out


def sensitivity(
    runs: Sequence[str],
    options: Sequence[str],
    scored: Mapping[tuple[str, str], Metrics],
    common: Mapping[tuple[str, str], Metrics] | None = None,
    single: Sequence[str] = (),
) -> dict[str, Any]:
    """Tables of a sensitivity analysis.

    Args:
        runs: the runs' names, in order.
        options: the label sets' names, in order (the first is the reference).
        scored: ``(run, option)`` -> that run's flat metrics under that label set.
        common: the same, scored only on the images every option labels (for rankings).
        single: metric names that do not depend on the label set (left out).

    Returns:
        ``{"runs", "options", "metrics": {key: {"values": {run: {option: v}},
        "range": {run: max - min}}}, "rankings": {key: {"scores": {option: [...]},
        "tau": {option: tau}, "swaps": {option: [[a, b], ...]}}}}``.
    """
    keys = sorted(
        {
            k
            for m in scored.values()
            for k in m
            if split_metric_key(k)[1] and split_metric_key(k)[1].split("@")[0] not in single
        }
    )
    out: dict[str, Any] = {"runs": list(runs), "options": list(options), "metrics": {}}
    for key in keys:
        values = {r: {o: scored.get((r, o), {}).get(key) for o in options} for r in runs}
        ranges = {}
        for r, row in values.items():
            ok = [v for v in row.values() if _finite(v)]
            ranges[r] = max(ok) - min(ok) if len(ok) > 1 else None
        if any(_finite(v) for row in values.values() for v in row.values()):
            out["metrics"][key] = {"values": values, "range": ranges}
    if len(runs) > 1 and common is not None:
        out["rankings"] = _rankings(runs, options, common, keys)
    return out


def _rankings(
    runs: Sequence[str], options: Sequence[str], common: Mapping, keys: Sequence[str]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in keys:
        if is_count(split_metric_key(key)[1]):
            continue
        scores = {o: [common.get((r, o), {}).get(key) for r in runs] for o in options}
        usable = [o for o in options if all(_finite(v) for v in scores[o])]
        if len(usable) < 2 or usable[0] != options[0]:
            continue
        lower = lower_is_better(split_metric_key(key)[1])
        ref = scores[options[0]]
        out[key] = {
            "scores": {o: scores[o] for o in usable},
            "tau": {o: kendall_tau(ref, scores[o]) for o in usable[1:]},
            "swaps": {
                o: [list(p) for p in swapped_pairs(runs, ref, scores[o], lower)] for o in usable[1:]
            },
        }
    return out


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if _finite(value) else "-"


def render_sensitivity(result: Mapping[str, Any], images: Mapping[str, Any] | None = None) -> str:
    """Markdown: per metric a run x label-set table with the range; then the rankings."""
    options, runs = result["options"], result["runs"]
    lines = ["# Sensitivity to the label set", ""]
    lines.append(f"Label sets: {', '.join(options)} (the first is the reference).")
    if images:
        lines.append(f"Images every label set labels (rankings): {images}.")
    lines.append("")
    for key, entry in result["metrics"].items():
        lines.append(f"## {key}")
        lines.append("")
        lines.append("| run | " + " | ".join(options) + " | range |")
        lines.append("|---" * (len(options) + 2) + "|")
        for r in runs:
            row = entry["values"][r]
            cells = [_fmt(row[o]) for o in options] + [_fmt(entry["range"][r])]
            lines.append(f"| {r} | " + " | ".join(cells) + " |")
        lines.append("")
    rankings = result.get("rankings") or {}
    if rankings:
        lines.append("## Rankings on the images every label set labels")
        lines.append("")
        lines.append("| metric | label set | Kendall's tau vs " + options[0] + " | swapped pairs |")
        lines.append("|---|---|---|---|")
        for key, entry in rankings.items():
            for o, tau in entry["tau"].items():
                swaps = "; ".join(f"{a} / {b}" for a, b in entry["swaps"][o]) or "none"
                lines.append(f"| {key} | {o} | {_fmt(tau)} | {swaps} |")
        lines.append("")
    return "\n".join(lines)


def operating_point(option: str) -> float | None:
    """The operating point in a label set's name (``real@0.9`` -> 0.9), None without."""
    _, _, point = option.rpartition("@")
    try:
        return float(point) if "@" in option else None
    except ValueError:
        return None


def plot_sensitivity(result: Mapping[str, Any], path: str | Path) -> Path | None:
    """The figure of metric against operating point: one line per (run, metric) over the
    label sets with a point; a label set without one (``tsipras``) as a dashed level.
    None when no shown metric has a value."""
    shown = [k for k in result["metrics"] if split_metric_key(k)[1] in FIGURE_METRICS]
    if not shown:
        return None
    plt = pyplot()
    options = result["options"]
    points = [(operating_point(o), o) for o in options]
    with_point = sorted((p, o) for p, o in points if p is not None)
    without = [o for p, o in points if p is None]
    cols = min(len(shown), 2)
    rows = math.ceil(len(shown) / cols)
    fig, grid = plt.subplots(rows, cols, figsize=(6 * cols, 3.6 * rows + 1), squeeze=False)
    axes = grid.ravel()
    for ax in axes[len(shown) :]:
        ax.set_visible(False)
    for ax, key in zip(axes, shown, strict=False):
        entry = result["metrics"][key]
        for i, run in enumerate(result["runs"]):
            color = f"C{i % 10}"
            row = entry["values"][run]
            xs = [p for p, o in with_point if _finite(row[o])]
            ys = [row[o] for p, o in with_point if _finite(row[o])]
            if xs:
                ax.plot(xs, ys, marker="o", color=color, label=run)
            for j, o in enumerate(without):
                if _finite(row[o]):
                    style = ("--", ":", "-.")[j % 3]
                    ax.axhline(
                        row[o], color=color, linestyle=style, linewidth=1, label=f"{run} [{o}]"
                    )
        ax.set_title(key)
        ax.set_xlabel("operating point (min. raters' score)")
        ax.set_ylabel(split_metric_key(key)[1])
        if with_point:  # the same points on every panel, also one with levels only
            low, high = with_point[0][0], with_point[-1][0]
            pad = max(0.05 * (high - low), 0.02)
            ax.set_xlim(low - pad, high + pad)
        ax.grid(alpha=0.3)
    # one legend under the panels (inside one it hid the lines)
    fullest = max(axes, key=lambda a: len(a.get_legend_handles_labels()[0]))
    handles, labels = fullest.get_legend_handles_labels()
    columns = max(min(len(handles), 3), 1)
    fig.legend(handles, labels, loc="lower center", ncol=columns, fontsize=9, frameon=False)
    below = (math.ceil(len(handles) / columns) * 0.22 + 0.1) / fig.get_figheight()
    fig.tight_layout(rect=(0, below, 1, 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
