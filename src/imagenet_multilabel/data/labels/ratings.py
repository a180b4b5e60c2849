"""Raters' answers behind a label set: ReaL's per-label scores and votes.

ReaL (Beyer et al. 2020) asked 5 raters about each of 184,962 (image, label) pairs of
24,889 ImageNet val images and gave each pair a Dawid & Skene score; ``real.json`` keeps
the pairs scoring at least :data:`REAL_OPERATING_POINT`. :class:`RatedPairs` holds those
pairs (the package ships them: ``assets/labels/real/real_scores.npz``, made by
``scripts/build_real_scores.py``) and answers what the rest of the package asks of them:
the label set at any operating point (:meth:`RatedPairs.labels_at`), the votes of an
image's labels (:meth:`RatedPairs.votes_of`), a soft target (:meth:`RatedPairs.weights`)
and how much the raters agreed (:meth:`RatedPairs.agreement`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from imagenet_multilabel.core.classes import NUM_CLASSES
from imagenet_multilabel.core.config import ASSETS
from imagenet_multilabel.core.errors import DataError

REAL_SCORES = ASSETS / "labels" / "real" / "real_scores.npz"
# real.json = the rated pairs with score >= this (found from the data; tested)
REAL_OPERATING_POINT = 0.8
VAL_PREFIX, VAL_SUFFIX = "ILSVRC2012_val_", ".JPEG"
NO, MAYBE, YES = 0, 1, 2  # columns of RatedPairs.votes
SCORE_BINS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def _val_number(name: str) -> int | None:
    base = name.rsplit("/", 1)[-1]
    if not (base.startswith(VAL_PREFIX) and base.endswith(VAL_SUFFIX)):
        return None
    digits = base[len(VAL_PREFIX) : -len(VAL_SUFFIX)]
    return int(digits) if digits.isdigit() else None


@dataclass(frozen=True)
class RatedPairs:
    """Rated (image, label) pairs: ``image`` (val numbers), ``label`` (class indices),
    ``score`` (float64 in [0, 1]) and ``votes`` (pairs x 3: how many raters answered no /
    maybe / yes), all of one length."""

    image: np.ndarray
    label: np.ndarray
    score: np.ndarray
    votes: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.score)
        if not (len(self.image) == len(self.label) == n and self.votes.shape == (n, 3)):
            raise DataError("rated pairs: image, label, score and votes differ in length")
        if n and (self.label.min() < 0 or self.label.max() >= NUM_CLASSES):
            raise DataError("rated pairs: a label is outside 0..999")
        if n and not np.all((self.score >= 0) & (self.score <= 1)):
            raise DataError("rated pairs: a score is outside [0, 1] (or NaN)")

    def __len__(self) -> int:
        return len(self.score)

    @cached_property
    def images(self) -> np.ndarray:
        """The rated images' val numbers, sorted unique."""
        return np.unique(self.image)

    @cached_property
    def _by_image(self) -> dict[int, np.ndarray]:
        order = np.argsort(self.image, kind="stable")
        cuts = np.flatnonzero(np.diff(self.image[order])) + 1
        return {int(self.image[g[0]]): g for g in np.split(order, cuts) if len(g)}

    def rows_of(self, name: str) -> np.ndarray:
        """The pair rows of image ``name`` (a val file name or path; none if not rated)."""
        number = _val_number(name)
        return self._by_image.get(number, np.empty(0, dtype=np.int64))

    def labels_at(self, min_score: float) -> dict[str, tuple[int, ...]]:
        """Every rated image's label set at operating point ``min_score``: its labels
        scoring at least that (an empty tuple where none does)."""
        out: dict[str, tuple[int, ...]] = {}
        keep = self.score >= min_score
        for number, rows in self._by_image.items():
            labels = self.label[rows[keep[rows]]]
            out[f"{VAL_PREFIX}{number:08d}{VAL_SUFFIX}"] = tuple(sorted({int(c) for c in labels}))
        return out

    def votes_of(self, name: str) -> dict[int, dict[str, Any]]:
        """The raters' answers about image ``name``'s rated labels: class -> ``{"score",
        "yes", "maybe", "no", "raters"}`` (empty where the image was not rated)."""
        out = {}
        for r in self.rows_of(name):
            no, maybe, yes = (int(v) for v in self.votes[r])
            out[int(self.label[r])] = {
                "score": float(self.score[r]),
                "yes": yes,
                "maybe": maybe,
                "no": no,
                "raters": yes + maybe + no,
            }
        return out

    def weights(self, file_names: Sequence[str]) -> np.ndarray:
        """Soft target ``(N, 1000)`` float32: each rated label's score as its weight,
        NaN on every class of an image that was not rated (the caller keeps its label
        set's 0/1 there)."""
        out = np.full((len(file_names), NUM_CLASSES), np.nan, dtype=np.float32)
        for i, name in enumerate(file_names):
            rows = self.rows_of(name)
            if len(rows):
                out[i] = 0.0
                out[i, self.label[rows]] = self.score[rows]
        return out

    def agreement(self) -> dict[str, Any]:
        """How much the raters agreed: the share of pairs every rater answered the same
        (all yes, all no, all maybe), the share with a yes and a no, and the
        distribution of scores (pairs per bin of :data:`SCORE_BINS`)."""
        n = len(self)
        answered = self.votes.sum(axis=1)
        unanimous = (self.votes.max(axis=1) == answered) & (answered > 0)
        split = (self.votes[:, YES] > 0) & (self.votes[:, NO] > 0)
        hist, _ = np.histogram(self.score, bins=SCORE_BINS)
        share = (lambda k: float(k) / n) if n else (lambda k: 0.0)
        return {
            "pairs": n,
            "images": len(self.images),
            "raters_per_pair": float(answered.mean()) if n else 0.0,
            "unanimous": share(unanimous.sum()),
            "unanimous_yes": share((self.votes[:, YES] == answered).sum()),
            "unanimous_no": share((self.votes[:, NO] == answered).sum()),
            "yes_and_no": share(split.sum()),
            "score_bins": [
                {"from": a, "to": b, "pairs": int(k)}
                for a, b, k in zip(SCORE_BINS, SCORE_BINS[1:], hist, strict=False)
            ],
        }


def read_rated_pairs(path: str | Path | None = None) -> RatedPairs:
    """ReaL's rated pairs from a compact ``real_scores.npz`` (``path=None``: the copy the
    package ships); read with ``allow_pickle=False``."""
    path = REAL_SCORES if path is None else Path(path).expanduser()
    hint = (
        "use the shipped copy (labels.scores=null) or rebuild it with scripts/build_real_scores.py"
    )
    if not path.is_file():
        raise DataError(f"ReaL scores file {path} does not exist: {hint}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in ("image", "label", "score", "votes")}
    except (KeyError, ValueError, OSError) as e:
        raise DataError(f"{path} is not a ReaL scores file ({e}): {hint}") from None
    return RatedPairs(
        image=arrays["image"].astype(np.int64),
        label=arrays["label"].astype(np.int64),
        score=arrays["score"].astype(np.float64),
        votes=arrays["votes"].astype(np.int64),
    )


# label sets (by the name a run records, before any "@<point>") whose raters' answers
# the package ships
RATED_LABEL_SETS = {"real": REAL_SCORES}


def ratings_for(label_set: str | None) -> RatedPairs | None:
    """The raters' answers behind the label set a run records (``real``, ``real@0.9``),
    None for a set without them."""
    path = RATED_LABEL_SETS.get(str(label_set or "").split("@", 1)[0])
    return read_rated_pairs(path) if path is not None else None
