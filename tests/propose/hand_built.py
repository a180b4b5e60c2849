"""Runs with chosen probabilities on the demo photos, written by tests/helpers.py's
``write_run`` (the project's writers), so that every candidate is known by construction."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from imagenet_multilabel.core.classes import NUM_CLASSES
from tests.helpers import Predictions, class_of, command, demo_photos, write_run

NUM = 12


def log_probs(probs: dict[int, float]) -> np.ndarray:
    """Logits whose softmax gives ``probs`` to the named classes and spreads the rest
    evenly over the other classes."""
    rest = (1.0 - sum(probs.values())) / (NUM_CLASSES - len(probs))
    p = np.full(NUM_CLASSES, rest)
    for c, v in probs.items():
        p[c] = v
    return np.log(p).astype(np.float32)


def dataset(rows: list[dict[int, float]], files: list[str] | None = None) -> Predictions:
    files = files or demo_photos()[: len(rows)]
    target = np.array([class_of(f) for f in files])
    logits = np.stack([log_probs(r) for r in rows])
    return Predictions(files, target, logits, None)


def make_runs(tmp_path: Path, per_model: list[list[dict[int, float]]]) -> list[Path]:
    """One run folder per model; ``per_model[m][i]``: model m's probabilities of image i."""
    return [
        write_run(tmp_path / f"run{m}", "hand_built", {"demo": dataset(rows)})
        for m, rows in enumerate(per_model)
    ]


def run_propose(*args: str) -> subprocess.CompletedProcess:
    """``python -m imagenet_multilabel propose args...`` as a user runs it, in a bare
    environment."""
    return command("propose", *args, base={"PATH": "/usr/bin:/bin"}, timeout=120)
