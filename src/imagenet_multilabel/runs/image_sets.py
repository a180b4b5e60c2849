"""Which images a result counted: ``<dataset>/num_distinct_images`` and
``<dataset>/images_sha256`` in metrics.json.

The hash is that of the sorted ids (relative file names) of the images whose predictions
were gathered and scored (data/fingerprint.py's ``ids_sha256``), so it is the same on any
number of processes, after a resume or a re-scoring, and equals the ``ids_sha256`` of the
dataset's fingerprint that the run's job identity reads. They are not metrics: RunDir
keeps them apart (``RunDir.image_sets``), and the leaderboard notes two rows of one
dataset that scored different image sets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from imagenet_multilabel.data.fingerprint import IMAGE_SET_KEYS, image_set

__all__ = ["IMAGE_SET_KEYS", "scored_image_set", "split_image_sets"]


def scored_image_set(ids: Sequence[str], index: Any) -> dict[str, Any]:
    """:func:`~imagenet_multilabel.data.fingerprint.image_set` of the images ``ids[i]`` for
    every ``i`` of ``index`` (the gathered predictions' dataset indices)."""
    positions = np.asarray(index, dtype=np.int64).reshape(-1)
    return image_set(str(ids[i]) for i in positions.tolist())


def split_image_sets(
    per_dataset: Mapping[str, Mapping[str, Any]],
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """``{dataset: metrics}`` as metrics.json holds it -> (the metrics, the image sets)."""
    metrics, sets = {}, {}
    for dataset, values in per_dataset.items():
        metrics[dataset] = {k: v for k, v in values.items() if k not in IMAGE_SET_KEYS}
        found = {k: values[k] for k in IMAGE_SET_KEYS if k in values}
        if found:
            sets[dataset] = found
    return metrics, sets
