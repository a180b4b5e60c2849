"""How much of an accuracy gap between two datasets their label-count distributions explain.

Given the per-subgroup accuracies of one model on dataset A (e.g. ImageNet val + ReaL) and
dataset B (e.g. ImageNetV2 + Multilabelfy), subgroups being images with 1, 2, 3, 4+ valid
labels:

- ``A`` = sum_g w_A[g] acc_A[g] and ``B`` = sum_g w_B[g] acc_B[g], with w[g] the share of
  labeled images in subgroup g (this equals the metric over all labeled images);
- ``A reweighted to B`` = sum_g w_B[g] acc_A[g]: A's accuracy had it B's label-count mix;
- gap = B - A; explained = A reweighted - A; residual = B - A reweighted; the explained
  share = explained / gap.

The subgroup metrics come from the multi-label head (``<metric>@labels=<g>`` and
``num_images@labels=<g>`` in metrics.json).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from imagenet_multilabel.core.errors import DataError
from imagenet_multilabel.reports.plotting import pyplot
from imagenet_multilabel.scoring.metrics.names import (
    LABEL_GROUPS,
    SUBGROUP_ACCURACIES,
    SUBGROUP_COUNT,
    subgroup,
)


@dataclass
class GapRow:
    metric: str
    a: float
    b: float
    gap: float
    a_reweighted: float | None = None
    explained: float | None = None
    residual: float | None = None
    explained_share: float | None = None


def _value(metrics: Mapping[str, float | None], key: str) -> float:
    """A metric as a float; missing or null (NaN in metrics.json) -> NaN."""
    value = metrics.get(key)
    return math.nan if value is None else float(value)


def subgroup_weights(metrics: Mapping[str, float], label: str) -> dict[str, float]:
    counts = {g: _value(metrics, subgroup(SUBGROUP_COUNT, g)) for g in LABEL_GROUPS}
    if any(math.isnan(c) for c in counts.values()):
        raise DataError(
            f"{label} has no label-count subgroups ({subgroup(SUBGROUP_COUNT, '...')}): "
            "evaluate it with a label set and the multi-label head"
        )
    total = sum(counts.values())
    if total == 0:
        raise DataError(f"{label} has no labeled images")
    return {g: c / total for g, c in counts.items()}


def _weighted(acc: Mapping[str, float], weights: Mapping[str, float]) -> float:
    # an empty subgroup has no accuracy (NaN) and weight 0: it contributes nothing
    return sum(w * acc[g] for g, w in weights.items() if w > 0)


def explain_gap(
    a: Mapping[str, float], b: Mapping[str, float], a_label: str = "A", b_label: str = "B"
) -> list[GapRow]:
    """Gap rows for top1, real_top1, vartopk_strict (reweighted) and asma (plain)."""
    wa, wb = subgroup_weights(a, a_label), subgroup_weights(b, b_label)
    rows = []
    for metric in SUBGROUP_ACCURACIES:
        acc_a = {g: _value(a, subgroup(metric, g)) for g in LABEL_GROUPS}
        acc_b = {g: _value(b, subgroup(metric, g)) for g in LABEL_GROUPS}
        missing = [g for g in LABEL_GROUPS if wb[g] > 0 and math.isnan(acc_a[g])]
        if missing:
            raise DataError(
                f"{a_label} has no images with {missing[0]} labels, which {b_label} has: "
                "its accuracy cannot be reweighted"
            )
        base, target = _weighted(acc_a, wa), _weighted(acc_b, wb)
        reweighted = _weighted(acc_a, wb)
        gap = target - base
        rows.append(
            GapRow(
                metric,
                base,
                target,
                gap,
                reweighted,
                reweighted - base,
                target - reweighted,
                (reweighted - base) / gap if gap != 0 else None,
            )
        )
    if "asma" in a and "asma" in b:
        rows.append(
            GapRow("asma", float(a["asma"]), float(b["asma"]), float(b["asma"]) - float(a["asma"]))
        )
    return rows


def _num(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x:+.2f}" if signed else f"{x:.2f}"


def gap_markdown(
    rows: list[GapRow], a_label: str, b_label: str, wa: Mapping[str, float], wb: Mapping[str, float]
) -> str:
    lines = [
        f"# Gap from {a_label} (A) to {b_label} (B)",
        "",
        "Accuracies over labeled images, in percent. *A reweighted* is A's per-label-count "
        "accuracy under B's label-count distribution; *explained* = A reweighted - A; "
        "*residual* = B - A reweighted.",
        "",
        "| metric | A | B | gap B-A | A reweighted | explained | residual | explained share |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        share = "-" if r.explained_share is None else f"{100 * r.explained_share:.1f}%"
        lines.append(
            f"| {r.metric} | {_num(r.a)} | {_num(r.b)} | {_num(r.gap, True)} | "
            f"{_num(r.a_reweighted)} | {_num(r.explained, True)} | {_num(r.residual, True)} "
            f"| {share} |"
        )
    lines += ["", "| labels per image | share of A | share of B |", "|---|---:|---:|"]
    lines += [f"| {g} | {100 * wa[g]:.1f}% | {100 * wb[g]:.1f}% |" for g in LABEL_GROUPS]
    return "\n".join(lines) + "\n"


def plot_gap(
    a: Mapping[str, float], b: Mapping[str, float], a_label: str, b_label: str, path: Path
) -> Path:
    """Per-label-count vartopk_strict accuracy of A and B, and their label-count shares."""
    plt = pyplot()

    wa, wb = subgroup_weights(a, a_label), subgroup_weights(b, b_label)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    panels = [
        (
            ax1,
            [[_value(m, subgroup("vartopk_strict", g)) for g in LABEL_GROUPS] for m in (a, b)],
            "variable top-k accuracy (%)",
            "accuracy per label count",
        ),
        (
            ax2,
            [[100 * w[g] for g in LABEL_GROUPS] for w in (wa, wb)],
            "% of labeled images",
            "label-count distribution",
        ),
    ]
    x = range(len(LABEL_GROUPS))
    for ax, series, ylabel, title in panels:
        for offset, values, label in zip((-0.2, 0.2), series, (a_label, b_label), strict=True):
            ax.bar([i + offset for i in x], values, width=0.4, label=label)
        ax.set(
            xticks=list(x),
            xticklabels=LABEL_GROUPS,
            xlabel="valid labels per image",
            ylabel=ylabel,
            title=title,
        )
    # one legend above both panels: inside a panel it covered the bars
    handles, labels = ax1.get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=2, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def rows_as_dicts(rows: list[GapRow]) -> list[dict]:
    return [asdict(r) for r in rows]
