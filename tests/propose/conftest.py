"""Runs with chosen probabilities on the demo photos, written with the project's writers
(the gallery tests' ``write_run``), so that every candidate is known by construction."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from imagenet_multilabel.core.classes import NUM_CLASSES

from ..conftest import REPO
from ..gallery.conftest import Dataset, class_of, demo_photos, write_run

NUM = 12


def log_probs(probs: dict[int, float]) -> np.ndarray:
    """Logits whose softmax gives ``probs`` to the named classes and spreads the rest
    evenly over the other classes."""
    rest = (1.0 - sum(probs.values())) / (NUM_CLASSES - len(probs))
    p = np.full(NUM_CLASSES, rest)
    for c, v in probs.items():
        p[c] = v
    return np.log(p).astype(np.float32)


def dataset(rows: list[dict[int, float]], files: list[str] | None = None) -> Dataset:
    files = files or demo_photos()[: len(rows)]
    target = np.array([class_of(f) for f in files])
    logits = np.stack([log_probs(r) for r in rows])
    return Dataset(files, target, logits, None)


def make_runs(tmp_path: Path, per_model: list[list[dict[int, float]]]) -> list[Path]:
    """One run folder per model; ``per_model[m][i]``: model m's probabilities of image i."""
    return [
        write_run(tmp_path / f"run{m}", {"demo": dataset(rows)}) for m, rows in enumerate(per_model)
    ]


def run_propose(*args: str) -> subprocess.CompletedProcess:
    """``python -m imagenet_multilabel propose args...`` as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "imagenet_multilabel", "propose", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
        timeout=120,
    )
