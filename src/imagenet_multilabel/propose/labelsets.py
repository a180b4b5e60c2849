"""Label files made from proposals: reviewers' exports read back and merged into one set
(a class kept where at least ``min_agree`` reviewers kept it) with their agreement, and the
model-made set the proposals alone imply. Every file written records its origin under
``"_origin"`` (reviewed by N people / model-made), which ``labels=file`` reads and
``run.json`` and the leaderboard show; a model-made set is never merged with reviewed ones.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imagenet_multilabel.core.classes import NUM_CLASSES
from imagenet_multilabel.core.errors import DataError, UserError
from imagenet_multilabel.core.files import write_json
from imagenet_multilabel.data.labels.files import ORIGIN_KEY, read_json, read_origin
from imagenet_multilabel.propose.proposals import Proposals


@dataclass(frozen=True)
class Review:
    """One reviewer's label file: file -> classes, for the images they reviewed."""

    path: Path
    labels: dict[str, tuple[int, ...]]
    origin: dict[str, Any]


def read_review(path: str | Path, proposals: Proposals) -> Review:
    """A reviewer's export, checked against the proposals it claims to review.

    Raises:
        DataError: not a label file, a model-made file, another proposals' review, an image
            the proposals do not hold, or a class outside 0..999.
    """
    path = Path(path).expanduser()
    data = read_json(path, "give the path of a reviewer's export (the review page's Export)")
    if not isinstance(data, dict):
        raise DataError(f"{path} is not a label file (a JSON object file -> classes)")
    origin = read_origin(path) or {}
    if origin.get("kind") == "model-made":
        raise DataError(
            f"{path} is a model-made label set: merge only reviewers' exports (a model-made "
            "set is never mixed with reviewed ones)"
        )
    made_for = origin.get("proposals")
    if made_for is not None and made_for != proposals.hash:
        raise DataError(
            f"{path} reviews other proposals ({made_for}, these are {proposals.hash}): "
            "merge exports of the same review page"
        )
    known = set(proposals.files)
    labels: dict[str, tuple[int, ...]] = {}
    for key, value in data.items():
        if key == ORIGIN_KEY:
            continue
        if key not in known:
            raise DataError(
                f"{path} labels {key}, which these proposals do not hold: it is a review of "
                f"other images ({proposals.path})"
            )
        values = value if isinstance(value, list) else [value]
        bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int)]
        bad += [v for v in values if isinstance(v, int) and not 0 <= v < NUM_CLASSES]
        if bad:
            raise DataError(
                f"{path}: {key} has unknown class {bad[0]!r} (not an index 0..{NUM_CLASSES - 1}); "
                "export it again from the review page"
            )
        labels[key] = tuple(sorted(set(values)))
    if not labels:
        raise DataError(f"{path} labels no image: review some images, then export")
    reviewers = origin.get("reviewers", 1)
    if reviewers != 1:
        raise DataError(
            f"{path} is already a merge of {reviewers} reviewers: merge the reviewers' own exports"
        )
    return Review(path, labels, origin)


# ------------------------------------------------------------------------- agreement


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa of two raters' binary decisions (NaN when it is undefined)."""
    # torch: only for kappa (the rest of propose reads numpy)
    import torch
    from torchmetrics.functional.classification import binary_cohen_kappa

    if len(a) == 0:
        return float("nan")
    if np.array_equal(a, b) and len(set(a.tolist())) == 1:
        return 1.0  # one decision throughout, the same: torchmetrics gives NaN
    return float(binary_cohen_kappa(torch.as_tensor(a, dtype=torch.long), torch.as_tensor(b)))


@dataclass(frozen=True)
class ImageAgreement:
    file: str
    sets: tuple[tuple[int, ...], ...]  # per reviewer who reviewed it
    merged: tuple[int, ...]
    identical: bool


@dataclass(frozen=True)
class Merge:
    labels: dict[str, tuple[int, ...]]
    images: list[ImageAgreement]  # images every reviewer reviewed
    identical_share: float
    kappa: float  # two reviewers: Cohen's kappa over (image, class) decisions; more: pairs' mean
    decisions: int
    left_out: int  # images fewer than min_agree reviewers reviewed


def merge_reviews(reviews: Sequence[Review], proposals: Proposals, min_agree: int) -> Merge:
    """Keep a class where at least ``min_agree`` reviewers kept it; an image reviewed by
    fewer than ``min_agree`` reviewers is left out. Agreement is measured on the images
    every reviewer reviewed: the share of identical sets, and Cohen's kappa over the
    (image, class) decisions on the image's candidates and any class a reviewer added."""
    if not 1 <= min_agree <= len(reviews):
        raise UserError(f"min_agree={min_agree} must be 1..{len(reviews)} (the reviewers given)")
    candidates = {im["file"]: [c["class"] for c in im["candidates"]] for im in proposals.images}
    labels: dict[str, tuple[int, ...]] = {}
    left_out = 0
    for f in proposals.files:
        sets = [r.labels[f] for r in reviews if f in r.labels]
        if len(sets) < min_agree:
            left_out += int(bool(sets))
            continue
        counts: dict[int, int] = {}
        for s in sets:
            for c in s:
                counts[c] = counts.get(c, 0) + 1
        labels[f] = tuple(sorted(c for c, n in counts.items() if n >= min_agree))
    shared = [f for f in proposals.files if all(f in r.labels for r in reviews)]
    images = [
        ImageAgreement(
            f,
            tuple(r.labels[f] for r in reviews),
            labels.get(f, ()),
            len({r.labels[f] for r in reviews}) == 1,
        )
        for f in shared
    ]
    kappas, decisions = [], 0
    for a, b in itertools.combinations(range(len(reviews)), 2):
        xa, xb = [], []
        for im in images:
            classes = sorted(set(candidates[im.file]) | set(im.sets[a]) | set(im.sets[b]))
            xa += [c in im.sets[a] for c in classes]
            xb += [c in im.sets[b] for c in classes]
        decisions = len(xa)
        kappas.append(cohen_kappa(np.asarray(xa, dtype=np.int64), np.asarray(xb, dtype=np.int64)))
    share = sum(im.identical for im in images) / len(images) if images else float("nan")
    kappa = float(np.mean(kappas)) if kappas else float("nan")
    return Merge(labels, images, share, kappa, decisions, left_out)


def merged_origin(reviews: Sequence[Review], proposals: Proposals, merge: Merge, k: int) -> dict:
    return {
        "kind": "reviewed",
        "reviewers": len(reviews),
        "min_agree": k,
        "proposals": proposals.hash,
        "dataset": proposals.data["dataset"],
        "sources": [str(r.path) for r in reviews],
        "identical_share": merge.identical_share,
        "cohen_kappa": merge.kappa,
    }


def auto_labels(proposals: Proposals, min_prob: float) -> dict[str, tuple[int, ...]]:
    """The model-made set: per image, the candidates with mean probability >= ``min_prob``
    (an image with none keeps its original label)."""
    if not (isinstance(min_prob, (int, float)) and 0 < min_prob <= 1):
        raise UserError(f"min_prob={min_prob!r} must be in (0, 1]")
    out = {}
    for im in proposals.images:
        kept = [c["class"] for c in im["candidates"] if c["mean_prob"] >= min_prob]
        out[im["file"]] = tuple(sorted(set(kept) or {im["original"]}))
    return out


def write_label_file(path: Path, labels: dict[str, tuple[int, ...]], origin: dict) -> None:
    """A label file ``labels=file`` reads as it is, with its ``_origin``; never over an
    existing file."""
    if path.exists():
        raise UserError(f"{path} exists: choose another out= (nothing is overwritten)")
    write_json(path, {**{f: list(c) for f, c in labels.items()}, ORIGIN_KEY: origin})
