"""What the gallery shows of each selected image: its photo(s) on disk, labels and top-5,
as plain data (the page and the W&B rows are both made from it)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imagenet_multilabel.core.classes import NUM_CLASSES, class_names
from imagenet_multilabel.core.errors import DataError
from imagenet_multilabel.data.labels.ratings import RatedPairs
from imagenet_multilabel.reports.gallery.selection import Section, ranking, softmax64
from imagenet_multilabel.reports.images.photos import ImageLocator, tile_classes, tile_labels

log = logging.getLogger(__name__)

TOP_K = 5


@dataclass(frozen=True)
class Tile:
    """One photo of an image (a plain image has one, a composite 2-4)."""

    file: str  # as stored in the predictions (relative to the dataset root)
    source: Path | None  # where it is on disk now; None: not found
    label: int | None  # its class, when known
    rank: int | None  # rank of that class in the model's ranking (1 = top-1)


@dataclass(frozen=True)
class Sample:
    index: int
    path: str
    tiles: tuple[Tile, ...]
    target: int
    valid: tuple[int, ...] | None  # None: the run has no label set
    top: tuple[tuple[int, float], ...]  # (class, probability), best first
    confidence: float
    valid_ranks: tuple[tuple[int, int], ...]  # (class, rank) of the valid labels, by rank
    # the raters' answers about the image's rated labels (class -> yes/maybe/no/score), where
    # the label set has them (RatedPairs.votes_of)
    votes: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def file_name(self) -> str:
        return "+".join(t.file.rsplit("/", 1)[-1] for t in self.tiles)

    def is_valid(self, cls: int) -> bool:
        """Valid label (without a label set: the original label)."""
        return cls in self.valid if self.valid is not None else cls == self.target


def build_samples(
    data: dict[str, np.ndarray],
    rows: Iterable[int],
    locator: ImageLocator,
    composite: bool,
    ratings: RatedPairs | None = None,
) -> dict[int, Sample]:
    """Samples of the given dataset rows (each once, however many sections show it), with
    the raters' answers of ``ratings`` about each image's labels."""
    rows = np.unique(np.fromiter(rows, dtype=np.int64))
    if len(rows) == 0:
        return {}
    logits = data["logits"][rows]
    order = ranking(logits)
    rank_of = np.empty_like(order)
    np.put_along_axis(rank_of, order, np.arange(1, order.shape[1] + 1)[None, :], axis=1)
    probs = softmax64(logits)
    known = tile_classes(data["path"], data["target"]) if composite else {}
    valid_all = data.get("valid")
    out = {}
    for k, i in enumerate(rows.tolist()):
        path = str(data["path"][i])
        target = int(data["target"][i])
        valid = tuple(np.flatnonzero(valid_all[i]).tolist()) if valid_all is not None else None
        files = path.split("+") if composite else [path]
        labels = tile_labels(files, target, valid, known) if composite else [target]
        tiles = tuple(
            Tile(f, locator.find(f), c, None if c is None else int(rank_of[k, c]))
            for f, c in zip(files, labels, strict=True)
        )
        top = tuple((int(c), float(probs[k, c])) for c in order[k, :TOP_K])
        ranks = sorted((int(rank_of[k, c]), c) for c in valid or ())
        out[i] = Sample(
            index=i,
            path=path,
            tiles=tiles,
            target=target,
            valid=valid,
            top=top,
            confidence=top[0][1],
            valid_ranks=tuple((c, r) for r, c in ranks),
            votes=ratings.votes_of(path) if ratings is not None and not composite else {},
        )
    return out


def check_class_space(data: dict[str, np.ndarray], where: str | Path) -> None:
    c = data["logits"].shape[1]
    if c != NUM_CLASSES:
        raise DataError(
            f"{where} holds logits over {c} classes, not the {NUM_CLASSES} ImageNet-1k classes "
            "whose names the gallery shows"
        )


def sample_rows(
    dataset: str, sections: list[Section], samples: dict[int, Sample]
) -> list[dict[str, object]]:
    """One plain dict per shown image and section, e.g. for a W&B table: ``dataset``,
    ``section``, ``index``, ``file``, ``image`` (path of the first photo, None if not
    found), ``label``, ``valid`` (names, ``; ``-joined; None without a label set),
    ``top5`` (``name p% ✓``...), ``confidence``, ``num_valid``, ``worst_rank``."""
    names = class_names()
    out = []
    for section in sections:
        for i in section.rows.tolist():
            s = samples[i]
            top5 = ", ".join(
                f"{names[c]} {100 * p:.1f}%{' ✓' if s.is_valid(c) else ''}" for c, p in s.top
            )
            source = s.tiles[0].source
            out.append(
                {
                    "dataset": dataset,
                    "section": section.spec.title,
                    "index": s.index,
                    "file": s.file_name,
                    "image": None if source is None else str(source),
                    "label": names[s.target],
                    "valid": None if s.valid is None else "; ".join(names[c] for c in s.valid),
                    "top5": top5,
                    "confidence": s.confidence,
                    "num_valid": None if s.valid is None else len(s.valid),
                    "worst_rank": s.valid_ranks[-1][1] if s.valid_ranks else None,
                }
            )
    return out
