"""Per-image rows of a finished run: what the model said about individual images.

:func:`per_image_rows` samples images of a run (its saved predictions) and describes each:
the file(s), the original label, the valid labels, the top-5 classes with their softmax
probabilities, and whether a top-1 that misses the original label is one of the valid
labels (the case the single-label protocol scores as an error). The W&B logger's
per-image table is made from these rows; a gallery can select and render the same rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imagenet_multilabel.core.classes import class_names
from imagenet_multilabel.core.errors import DataError
from imagenet_multilabel.reports.gallery.selection import ranking, softmax64
from imagenet_multilabel.runs.rundir import RunDir

TOP_K = 5


@dataclass
class ImageRow:
    dataset: str
    index: int
    path: str  # as stored with the predictions (a composite: its tiles joined by "+")
    files: list[Path]  # the image file(s) on disk, where the run's dataset root is known
    target: int
    valid: list[int] | None  # None: the dataset has no label set
    top5: list[tuple[int, float]]  # (class, probability), best first
    names: tuple[str, ...] = field(default_factory=class_names, repr=False)

    @property
    def top1(self) -> int:
        return self.top5[0][0]

    @property
    def correct(self) -> bool:
        """Top-1 is the original label."""
        return self.top1 == self.target

    @property
    def top1_valid(self) -> bool | None:
        """Top-1 is one of the valid labels (None without a label set)."""
        return None if self.valid is None else self.top1 in self.valid

    @property
    def wrong_but_valid(self) -> bool | None:
        """A "wrong" top-1 (not the original label) that is a valid label."""
        return None if self.valid is None else (not self.correct and self.top1 in self.valid)

    def label(self, index: int) -> str:
        return f"{self.names[index]} ({index})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "index": self.index,
            "path": self.path,
            "label": self.label(self.target),
            "valid_labels": None if self.valid is None else [self.label(c) for c in self.valid],
            "top5": [f"{self.label(c)} {100 * p:.1f}%" for c, p in self.top5],
            "correct": self.correct,
            "top1_valid": self.top1_valid,
            "wrong_but_valid": self.wrong_but_valid,
        }


def _files(root: Path | None, path: str) -> list[Path]:
    if root is None:
        return []
    whole = root / path
    if whole.is_file():
        return [whole]
    parts = [root / p for p in path.split("+")]
    return parts if all(p.is_file() for p in parts) else []


def rows_of_predictions(
    predictions: Mapping[str, np.ndarray],
    n: int,
    seed: int = 0,
    dataset: str = "images",
    root: str | Path | None = None,
) -> list[ImageRow]:
    """``n`` images drawn at random (``seed``) from one dataset's predictions (as
    :meth:`RunDir.predictions` returns them), in dataset order."""
    logits = np.asarray(predictions["logits"])
    total = len(logits)
    pick = np.sort(np.random.default_rng(seed).choice(total, min(n, total), replace=False))
    probs = softmax64(logits[pick])
    top = ranking(probs)[:, :TOP_K]  # by probability (ties: the lower class index first)
    prob = np.take_along_axis(probs, top, axis=1)
    valid = predictions.get("valid")
    root = Path(root) if root is not None else None
    rows = []
    for j, i in enumerate(pick):
        path = str(predictions["path"][i])
        rows.append(
            ImageRow(
                dataset,
                int(predictions["index"][i]),
                path,
                _files(root, path),
                int(predictions["target"][i]),
                None if valid is None else [int(c) for c in np.flatnonzero(valid[i])],
                [(int(c), float(p)) for c, p in zip(top[j], prob[j], strict=True)],
            )
        )
    return rows


def per_image_rows(
    source: RunDir | str | Path | Mapping[str, np.ndarray],
    n: int,
    seed: int = 0,
    dataset: str | None = None,
) -> list[ImageRow]:
    """``n`` sampled images per dataset of a run (a run folder or :class:`RunDir`), or of
    one dataset's predictions (a mapping as :meth:`RunDir.predictions` returns)."""
    if isinstance(source, Mapping):
        return rows_of_predictions(source, n, seed, dataset or "images")
    run = source if isinstance(source, RunDir) else RunDir(source)
    names = [dataset] if dataset is not None else list(run.prediction_files)
    if not names:
        raise DataError(f"{run.path} holds no predictions/*.npz: nothing to show per image")
    rows = []
    for name in names:
        record = (run.info.get("datasets") or {}).get(name) or {}
        rows += rows_of_predictions(run.predictions(name), n, seed, name, record.get("root"))
    return rows
