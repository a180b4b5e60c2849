"""Two label sets compared on the images both annotate, and the raters' agreement behind
a label set that has them (``stats``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from imagenet_multilabel.data.labels.sets import LabelSet


@dataclass(frozen=True)
class LabelSetAgreement:
    """How two label sets agree on their common images (both list them, both non-empty).

    Attributes:
        first, second: the label sets' names.
        common: images both annotate with at least one label.
        same_set: share of them with the same label set.
        same_count: share with the same number of labels.
        mean_jaccard: mean |A & B| / |A | B| of the two sets.
        labels_first, labels_second: mean labels per image in each.
        with_original: images of ``common`` whose original label is known.
        original_in_first, original_in_second: share of those whose original label is
            among the first's (second's) labels.
        same_original: share of those where both keep the original label or both drop it.
    """

    first: str
    second: str
    common: int
    same_set: float
    same_count: float
    mean_jaccard: float
    labels_first: float
    labels_second: float
    with_original: int
    original_in_first: float
    original_in_second: float
    same_original: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_label_sets(
    first: LabelSet, second: LabelSet, original: Mapping[str, int] | None = None
) -> LabelSetAgreement:
    """Compare ``first`` and ``second`` on the images both annotate (non-empty in both);
    ``original``: file name -> original label, where known."""
    common = sorted(k for k, v in first.by_file.items() if v and second.by_file.get(k))
    n = len(common)
    same_set = same_count = 0
    jaccard = n_first = n_second = 0.0
    known = in_first = in_second = same_original = 0
    for key in common:
        a, b = set(first.by_file[key]), set(second.by_file[key])
        same_set += a == b
        same_count += len(a) == len(b)
        jaccard += len(a & b) / len(a | b)
        n_first += len(a)
        n_second += len(b)
        label = (original or {}).get(key)
        if label is not None:
            known += 1
            in_first += label in a
            in_second += label in b
            same_original += (label in a) == (label in b)

    def share(k: float, of: int) -> float:
        return k / of if of else float("nan")

    return LabelSetAgreement(
        first=first.name,
        second=second.name,
        common=n,
        same_set=share(same_set, n),
        same_count=share(same_count, n),
        mean_jaccard=share(jaccard, n),
        labels_first=share(n_first, n),
        labels_second=share(n_second, n),
        with_original=known,
        original_in_first=share(in_first, known),
        original_in_second=share(in_second, known),
        same_original=share(same_original, known),
    )


def render_comparisons(pairs: Sequence[LabelSetAgreement]) -> str:
    """Plain text: one block per compared pair."""
    lines = []
    for p in pairs:
        lines.append(f"\n{p.first} vs {p.second}: {p.common:,} images annotated by both")
        if not p.common:
            continue
        lines += [
            f"  same label set           {100 * p.same_set:6.2f}%",
            f"  same number of labels    {100 * p.same_count:6.2f}%",
            f"  mean Jaccard             {p.mean_jaccard:6.3f}",
            f"  labels per image         {p.labels_first:.3f} vs {p.labels_second:.3f}",
        ]
        if p.with_original:
            lines += [
                f"  original label kept      {100 * p.original_in_first:6.2f}% vs "
                f"{100 * p.original_in_second:.2f}% (of {p.with_original:,} with it known)",
                f"  agree on keeping it      {100 * p.same_original:6.2f}%",
            ]
    return "\n".join(lines)


def render_agreement(name: str, agreement: Mapping[str, Any]) -> str:
    """Plain text of :meth:`~imagenet_multilabel.data.labels.ratings.RatedPairs.agreement`."""
    bins = agreement["score_bins"]
    lines = [
        f"\nraters behind {name}: {agreement['pairs']:,} rated (image, label) pairs over "
        f"{agreement['images']:,} images, {agreement['raters_per_pair']:.1f} raters each",
        f"  unanimous answers        {100 * agreement['unanimous']:6.2f}% "
        f"(all yes {100 * agreement['unanimous_yes']:.2f}%, "
        f"all no {100 * agreement['unanimous_no']:.2f}%)",
        f"  a yes and a no           {100 * agreement['yes_and_no']:6.2f}%",
        "  scores:  " + "  ".join(f"{b['from']:.1f}-{b['to']:.1f}" for b in bins),
        "  pairs:   " + "  ".join(f"{b['pairs']:>7,}" for b in bins),
    ]
    return "\n".join(lines)
