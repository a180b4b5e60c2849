"""How multi-label is a label set? Counts of labels per image, shares of multi-label
images, the most frequent label pairs; a comparison table and a bar plot."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

from imagenet_multilabel.core.classes import class_names
from imagenet_multilabel.data.labels.sets import LabelSet
from imagenet_multilabel.reports.plotting import pyplot

COUNT_BINS = ("0", "1", "2", "3", "4", "5+")


@dataclass
class LabelStats:
    """Label-count statistics of one label set (over a dataset's images if restricted).

    Attributes:
        name: label set name.
        images: images counted.
        by_count: images with 0 (empty), 1, 2, 3, 4 and 5+ valid labels.
        multi_share: share of all images with 2+ labels.
        multi_share_labeled: share of non-empty images with 2+ labels.
        top_pairs: most frequent co-occurring class pairs ``(a, b, images)``, a < b.
        missing: dataset images the label set does not list (counted as empty).
        labels_per_image: mean number of labels of the non-empty images.
    """

    name: str
    images: int
    by_count: dict[str, int]
    multi_share: float
    multi_share_labeled: float
    top_pairs: list[tuple[int, int, int]] = field(default_factory=list)
    missing: int = 0
    labels_per_image: float = 0.0

    @property
    def empty(self) -> int:
        return self.by_count["0"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; pairs carry class names."""
        out = asdict(self)
        names = class_names()
        out["empty"] = self.empty
        out["top_pairs"] = [
            {"classes": [a, b], "names": [names[a], names[b]], "images": n}
            for a, b, n in self.top_pairs
        ]
        return out


def _bin(count: int) -> str:
    return "5+" if count >= 5 else str(count)


def label_stats(
    labels: LabelSet,
    file_names: Sequence[str] | None = None,
    top_k: int = 10,
    allow_missing: bool = False,
) -> LabelStats:
    """Statistics of ``labels``, over all its entries or only over ``file_names``.

    Raises:
        DataError: ``file_names`` has images the label set lacks (unless ``allow_missing``)
            or duplicate base names (see :meth:`LabelSet.join`).
    """
    missing = 0
    if file_names is None:
        entries = list(labels.by_file.values())
    else:
        joined = labels.join(file_names, allow_missing=allow_missing)
        missing = joined.num_missing
        entries = [tuple(row.nonzero().flatten().tolist()) for row in joined.valid]
    by_count = dict.fromkeys(COUNT_BINS, 0)
    pairs: Counter[tuple[int, int]] = Counter()
    for classes in entries:
        by_count[_bin(len(classes))] += 1
        if len(classes) > 1:
            pairs.update(combinations(sorted(classes), 2))
    images = len(entries)
    multi = images - by_count["0"] - by_count["1"]
    labeled = images - by_count["0"]
    top = sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]
    return LabelStats(
        name=labels.name,
        images=images,
        by_count=by_count,
        multi_share=multi / images if images else 0.0,
        multi_share_labeled=multi / labeled if labeled else 0.0,
        top_pairs=[(a, b, n) for (a, b), n in top],
        missing=missing,
        labels_per_image=sum(map(len, entries)) / labeled if labeled else 0.0,
    )


def render_table(stats: Sequence[LabelStats], top_k: int = 5) -> str:
    """Plain-text side-by-side table of several label sets, then each set's top pairs."""
    rows: list[tuple[str, list[str]]] = [("images", [f"{s.images:,}" for s in stats])]
    rows.append(("empty (no valid label)", [f"{s.empty:,}" for s in stats]))
    for b in COUNT_BINS[1:]:
        label = f"{b} label" + ("" if b == "1" else "s")
        rows.append((label, [f"{s.by_count[b]:,}" for s in stats]))
    rows.append(("labels per labeled image", [f"{s.labels_per_image:.3f}" for s in stats]))
    rows.append(("multi-label, % of all", [f"{100 * s.multi_share:.2f}%" for s in stats]))
    rows.append(
        ("multi-label, % of labeled", [f"{100 * s.multi_share_labeled:.2f}%" for s in stats])
    )
    if any(s.missing for s in stats):
        rows.append(("not in label set", [f"{s.missing:,}" for s in stats]))
    first = max(len(r[0]) for r in rows)
    width = max([len(s.name) for s in stats] + [len(v) for r in rows for v in r[1]])
    lines = [" " * first + "".join(f"  {s.name:>{width}}" for s in stats)]
    lines += [f"{k:<{first}}" + "".join(f"  {v:>{width}}" for v in vals) for k, vals in rows]
    names = class_names()
    for s in stats:
        if s.top_pairs:
            lines.append(f"\nmost frequent label pairs in {s.name}:")
            for a, b, n in s.top_pairs[:top_k]:
                lines.append(f"  {n:>6,}  {names[a]} ({a}) + {names[b]} ({b})")
    return "\n".join(lines)


def plot_label_counts(stats: Sequence[LabelStats], path: str | Path) -> Path:
    """Bar plot (PNG) of the share of images with 0, 1, 2, 3, 4, 5+ labels per label set."""
    plt = pyplot()

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    width = 0.8 / max(len(stats), 1)
    for i, s in enumerate(stats):
        shares = [100 * s.by_count[b] / s.images if s.images else 0 for b in COUNT_BINS]
        xs = [x + (i - (len(stats) - 1) / 2) * width for x in range(len(COUNT_BINS))]
        ax.bar(xs, shares, width=width, label=f"{s.name} ({s.images:,} images)")
    ax.set_xticks(range(len(COUNT_BINS)), COUNT_BINS)
    ax.set_xlabel("valid labels per image")
    ax.set_ylabel("% of images")
    ax.set_title("Labels per image")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
