"""A dataset with its resolved label set: what every evaluation-like task scores."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from imagenet_multilabel.data.datasets.folders import ImageDataset
from imagenet_multilabel.data.labels.sets import ResolvedLabels


@dataclass
class EvalSet:
    """A dataset with its resolved label set."""

    dataset: ImageDataset
    labels: ResolvedLabels = field(default_factory=lambda: ResolvedLabels(None, {"labels": "none"}))
    fingerprint: dict[str, Any] | None = None  # what was read (data/fingerprint.py)

    @property
    def valid(self):
        return self.labels.valid

    @property
    def main(self):
        """Each image's main object (label sets that name one), else None."""
        return self.labels.main

    def record(self) -> dict[str, Any]:
        return {
            "class": type(self.dataset).__name__,
            "root": str(self.dataset.root),
            "num_images": len(self.dataset),
            "class_subset": _subset(self.dataset),
            **self.labels.info,
            "fingerprint": self.fingerprint,
        }


def _subset(dataset: ImageDataset) -> list[int] | None:
    subset = getattr(dataset, "class_subset", None)
    return None if subset is None else [int(c) for c in subset]
