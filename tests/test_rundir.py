"""outputs.RunDir: a run folder is read back whole or refused in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from imagenet_multilabel.core.errors import DataError
from imagenet_multilabel.core.files import write_json
from imagenet_multilabel.runs.rundir import RunDir, write_predictions


def _run(folder: Path, counted: int, stored: int) -> RunDir:
    write_json(folder / "metrics.json", {"folder/num_images": counted, "folder/top1": 50.0})
    write_predictions(
        folder / "predictions" / "folder.npz",
        index=np.arange(stored),
        files=[f"{i}.jpg" for i in range(stored)],
        target=np.zeros(stored, dtype=np.int64),
        logits=np.zeros((stored, 1000), dtype=np.float32),
    )
    return RunDir(folder)


def test_predictions_of_the_run_are_read(tmp_path: Path) -> None:
    assert len(_run(tmp_path, 3, 3).predictions("folder")["index"]) == 3


def test_predictions_of_another_run_are_refused(tmp_path: Path) -> None:
    """A predictions file copied in from another run is complete in itself: score re-scored
    it under this run's name without a word."""
    with pytest.raises(DataError, match=r"folder.npz holds 2 images but metrics.json counts 3"):
        _run(tmp_path, 3, 2).predictions("folder")
