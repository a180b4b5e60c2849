"""The metric catalog: one declaration per metric, what everything downstream of the scorer
knows about it (imports no torch: the config check reads it before torch is loaded).

A :class:`Metric` says a metric's name, its family (the function that computes it:
``single`` :func:`~.single.single_label_metrics`, ``multilabel``
:func:`~.multilabel.multilabel_metrics`, ``main_object``
:func:`~.multilabel.main_object_metrics`, ``scorer`` the scorer itself), whether higher
or lower is better, how it is shown, whether it needs a label set, and whether it goes
into the end-of-run table and leaderboard.md. Read by the scorer (a head may write only a
declared metric), the run summary (:mod:`imagenet_multilabel.runs.summary`), the
leaderboard (its columns and sort direction), the config check of ``optimized_metric`` and
``checkpoint.monitor``, W&B's subgroup table and docs/heads-and-metrics.md's table
(:func:`markdown_table`; a test keeps them equal).

Composite keys name a declared metric too (:func:`declaration`): a label-count subgroup
``top1@labels=2``, a confidence threshold ``confident_errors_valid@p>=0.5``, a head's
prefix ``topk.precision`` and train.py's stages ``finetuned.top1``.

Adding a metric: compute it in its family's function, declare it in :data:`METRICS`, test
it against a NumPy reference (tests/scoring/metrics/); the tests of
tests/scoring/metrics/test_catalog.py fail until the two agree and the docs table is
regenerated (``python -m imagenet_multilabel.scoring.metrics.catalog``).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from imagenet_multilabel.scoring.metrics.names import LABEL_GROUPS, subgroup

FAMILIES: tuple[str, ...] = ("scorer", "single", "multilabel", "main_object")
UNITS: tuple[str, ...] = ("percent", "nats", "count")
LABELS_PREFIX, CONFIDENCE_PREFIX = "labels=", "p>="  # after the '@' of a composite key


@dataclass(frozen=True)
class Metric:
    """One metric, declared once.

    Args:
        name: its key in metrics.json after ``<dataset>/`` (``top1``).
        family: the function that computes it (see the module docstring).
        meaning: one line for docs/heads-and-metrics.md's table.
        higher_is_better: ``True``, ``False``, or ``None`` for a count (no direction).
        unit: ``percent`` (a share, 0..100), ``nats`` or ``count`` (whole images).
        digits: decimals shown in the end-of-run table and leaderboard.md.
        needs_labels: computed only where the dataset has a label set.
        summary: a row of the end-of-run table (in :data:`METRICS` order).
        leaderboard: a column of leaderboard.md per dataset (in :data:`METRICS` order;
            leaderboard.csv and .json have every metric).
        by_label_count: also written per label-count subgroup, ``<name>@labels=<g>``.
        by_confidence: written only per top-1 score threshold, ``<name>@p>=<t>`` (the
            head's ``confidences``).
        optional: written only where an option asks for it (``num_nonfinite``, with
            ``nonfinite_logits=score``).
    """

    name: str
    family: str
    meaning: str
    higher_is_better: bool | None = True
    unit: str = "percent"
    digits: int = 2
    needs_labels: bool = False
    summary: bool = False
    leaderboard: bool = False
    by_label_count: bool = False
    by_confidence: bool = False
    optional: bool = False

    def __post_init__(self) -> None:
        if self.family not in FAMILIES or self.unit not in UNITS:
            raise ValueError(f"metric {self.name!r}: family or unit unknown")
        if (self.unit == "count") != (self.higher_is_better is None):
            raise ValueError(f"metric {self.name!r}: a count has no direction, a measure one")

    def format(self, value: float | int | None) -> str:
        """``value`` as the summary and leaderboard.md show it: a count whole, a measure
        with :attr:`digits` decimals; ``-`` for a missing or NaN value."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        return f"{int(value)}" if self.unit == "count" else f"{value:.{self.digits}f}"

    def written_as(self, confidences: Sequence[float] = (0.5, 0.8)) -> list[str]:
        """The metric names it is written under (without ``<dataset>/``), given the
        multi-label head's ``confidences``; the label-count subgroups come after the plain
        name."""
        if self.by_confidence:
            return [f"{self.name}@{CONFIDENCE_PREFIX}{t:g}" for t in confidences]
        return [self.name] + (
            [subgroup(self.name, g) for g in LABEL_GROUPS] if self.by_label_count else []
        )


def _count(name: str, family: str, meaning: str, **kw: bool) -> Metric:
    return Metric(name, family, meaning, higher_is_better=None, unit="count", digits=0, **kw)


def _multilabel(name: str, meaning: str, **kw: bool) -> Metric:
    return Metric(name, "multilabel", meaning, needs_labels=True, **kw)


#: every metric the heads and the scorer write, in the order of the end-of-run table and
#: of leaderboard.md's columns
# fmt: off
METRICS: tuple[Metric, ...] = (
    _count("num_images", "scorer", "images scored", summary=True, by_label_count=True),
    _count("num_nonfinite", "scorer", "images whose logits hold inf or NaN, only with "
           "`nonfinite_logits=score` (by default a run with such logits stops and writes "
           "nothing: [metrics-api.md](metrics-api.md#inputs))", optional=True),
    Metric("top1", "single", "the original single label is the best class",
           summary=True, leaderboard=True, by_label_count=True),
    Metric("top3", "single", "the original single label is among the 3 best classes",
           summary=True),
    Metric("top5", "single", "the original single label is among the 5 best classes",
           summary=True, leaderboard=True),
    Metric("nll", "single", "negative log-likelihood of the original label",
           higher_is_better=False, unit="nats", digits=3, summary=True),
    Metric("ece", "single", "expected calibration error of the top-1 score (head `ece_bins`, "
           "default 15; torchmetrics' bins `[k/15, (k+1)/15)`, a confidence of 1.0 in its own: "
           "[metrics-api.md](metrics-api.md#against-torchmetrics-and-scikit-learn))",
           higher_is_better=False, summary=True, leaderboard=True),
    _count("num_labeled", "multilabel", "images with at least one valid label",
           needs_labels=True, summary=True),
    _count("num_unlabeled", "multilabel",
           "images with no valid label (left out of the multi-label metrics)",
           needs_labels=True),
    _multilabel("real_top1", "the best class is in the image's valid set (ReaL accuracy; "
                "unlabeled images excluded)", summary=True, leaderboard=True,
                by_label_count=True),
    _multilabel("real_top5", "one of the 5 best classes is in the valid set", summary=True),
    Metric("main_top1", "main_object", "the best class is the annotated main object, for "
           "label sets that name one (`labels=tsipras`: [tsipras.md](tsipras.md))",
           needs_labels=True, summary=True, by_label_count=True),
    _multilabel("vartopk_strict", "the k best classes are exactly the image's k valid labels "
                "(k = size of its set): the paper's variable top-k", summary=True,
                leaderboard=True, by_label_count=True),
    _multilabel("vartopk_partial", "mean share of the k valid labels found among the k best "
                "classes", summary=True, leaderboard=True),
    _multilabel("asma", "Aggregate Subgroup Model Accuracy (below)", summary=True,
                leaderboard=True),
    _multilabel("map_macro", "mean average precision over the classes with a positive (as "
                "scikit-learn)", summary=True, leaderboard=True),
    _multilabel("map_micro", "average precision of all image x class pairs pooled"),
    _multilabel("precision", "micro precision of the head's predicted label sets (`mode`) "
                "against the valid sets, over labeled images"),
    _multilabel("recall", "micro recall of the predicted label sets"),
    _multilabel("f1", "micro F1 of the predicted label sets", summary=True),
    _multilabel("subset_accuracy", "the predicted label set is the valid set"),
    _multilabel("hamming_loss", "wrong image x class decisions of the predicted label sets",
                higher_is_better=False),
    _multilabel("confident_errors_valid", "of the confident top-1 \"errors\" (top-1 is not "
                "the original label, its score >= t): the share whose top-1 is a valid label",
                leaderboard=True, by_confidence=True),
    _multilabel("ece_multilabel", "ECE of the top-1 score where top-1 counts as correct when "
                "it is a valid label", higher_is_better=False),
)
# fmt: on
BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}
assert len(BY_NAME) == len(METRICS), "a metric declared twice"


def family(name: str) -> tuple[Metric, ...]:
    """The declarations of one family, in :data:`METRICS` order."""
    if name not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {name!r}")
    return tuple(m for m in METRICS if m.family == name)


def summary_metrics() -> tuple[str, ...]:
    """The rows of the end-of-run table, in order."""
    return tuple(m.name for m in METRICS if m.summary)


def leaderboard_metrics() -> tuple[Metric, ...]:
    """The metrics of leaderboard.md's columns, in order."""
    return tuple(m for m in METRICS if m.leaderboard)


def _variant_ok(metric: Metric, variant: str | None) -> bool:
    """Whether the part after ``@`` (``None``: no ``@``) is one ``metric`` is written with."""
    if variant is None:
        return not metric.by_confidence
    if variant.startswith(LABELS_PREFIX):
        return metric.by_label_count and variant[len(LABELS_PREFIX) :] in LABEL_GROUPS
    if variant.startswith(CONFIDENCE_PREFIX) and metric.by_confidence:
        try:
            return math.isfinite(float(variant[len(CONFIDENCE_PREFIX) :]))
        except ValueError:
            return False
    return False


def declaration(metric: str, prefixes: Iterable[str] | None = None) -> Metric | None:
    """The declaration of a metric name as metrics.json writes it after ``<dataset>/``
    (a composite key names its base metric), or ``None`` when none declares it.

    ``prefixes``: what may come before the name (the heads' ``prefix``, train.py's
    ``<stage>.``); ``None`` reads any prefix up to a ``.`` or, failing that, the longest
    declared name the key ends with (the leaderboard, which reads runs made with any
    heads)."""
    base, at, variant = metric.partition("@")
    found = None
    if prefixes is None:
        tail = base.rpartition(".")[2]
        found = BY_NAME.get(tail) or max(
            (m for m in METRICS if tail.endswith(m.name)), key=lambda m: len(m.name), default=None
        )
    else:
        for prefix in ("", *prefixes):
            if base.startswith(prefix) and base[len(prefix) :] in BY_NAME:
                found = BY_NAME[base[len(prefix) :]]
                break
    if found is None or not _variant_ok(found, variant if at else None):
        return None
    return found


def lower_is_better(metric: str) -> bool:
    """Whether a smaller value of ``metric`` (any key :func:`declaration` reads) is the
    better one; counts and undeclared names sort as higher is better."""
    found = declaration(metric)
    return found is not None and found.higher_is_better is False


def check_metric_name(
    option: str, metric: str, prefixes: Iterable[str] = (), sweep: bool = False
) -> None:
    """A :class:`~imagenet_multilabel.core.errors.UserError` unless ``metric`` (the part
    of ``option``'s value after ``<dataset>/``) names a declared metric, behind one of
    ``prefixes`` or none; ``sweep``: a setting of the whole sweep (``optimized_metric``),
    a :class:`~imagenet_multilabel.core.errors.SweepError`. For the config check, before
    anything is built."""
    # (core.errors imports no torch)
    from imagenet_multilabel.core.errors import SweepError, UserError

    error = SweepError if sweep else UserError

    prefixes = tuple(prefixes)
    if declaration(metric, prefixes) is not None:
        return
    prefix = max((p for p in prefixes if metric.startswith(p)), key=len, default="")
    known = [k for m in METRICS for k in m.written_as()]
    close = difflib.get_close_matches(metric[len(prefix) :], known, n=1)
    hint = f"did you mean {prefix + close[0]!r}?" if close else "see docs/heads-and-metrics.md"
    raise error(f"{option}: {metric!r} is not a metric: {hint}")


def head_prefixes(heads: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The ``prefix`` of each head of a ``head`` config node that has one."""
    found = (head.get("prefix") for head in (heads or {}).values() if isinstance(head, Mapping))
    return tuple(str(p) for p in found if p)


def markdown_table() -> str:
    """docs/heads-and-metrics.md's table of metrics (between its ``metrics-table``
    markers), one row per declaration."""
    lines = [
        "| metric | better | shown | needs labels | meaning |",
        "|---|---|---|---|---|",
    ]
    for m in METRICS:
        names = ", ".join(f"`{k}`" for k in m.written_as()[:1])
        if m.by_label_count:
            names += f", `{m.name}@labels=1\\|2\\|3\\|4+`"
        if m.by_confidence:
            names = f"`{m.name}@p>=<t>` (head `confidences`, default 0.5, 0.8)"
        better = {True: "higher", False: "lower", None: "-"}[m.higher_is_better]
        shown = m.unit if m.unit == "count" else f"{m.unit}, {m.digits} decimals"
        where = [w for w, on in (("summary", m.summary), ("leaderboard.md", m.leaderboard)) if on]
        shown += f"; {', '.join(where)}" if where else ""
        labels = "yes" if m.needs_labels else "no"
        lines.append(f"| {names} | {better} | {shown} | {labels} | {m.meaning} |")
    return "\n".join(lines) + "\n"


TABLE_BEGIN = "<!-- metrics-table: python -m imagenet_multilabel.scoring.metrics.catalog -->"
TABLE_END = "<!-- /metrics-table -->"


def with_table(document: str) -> str:
    """``document`` with the text between its table markers replaced by
    :func:`markdown_table`."""
    head, begin, rest = document.partition(TABLE_BEGIN)
    _, end, tail = rest.partition(TABLE_END)
    if not begin or not end:
        raise ValueError("the document has no metrics-table markers")
    return f"{head}{TABLE_BEGIN}\n{markdown_table()}{TABLE_END}{tail}"


if __name__ == "__main__":  # regenerate docs/heads-and-metrics.md's table
    from pathlib import Path

    doc = Path(__file__).resolve().parents[4] / "docs" / "heads-and-metrics.md"
    doc.write_text(with_table(doc.read_text()))
    print(f"wrote the metrics table of {doc}")
