"""Fixtures of the gallery tests: hand-built runs (hand_built.py) written as evaluate writes
them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import Predictions, write_run
from tests.reports.gallery.hand_built import composite_dataset, plain_dataset


@pytest.fixture
def labeled_run(tmp_path: Path) -> tuple[Path, dict[str, Predictions]]:
    datasets = {"demo": plain_dataset(), "patchml": composite_dataset()}
    return write_run(tmp_path / "run", "hand_built", datasets), datasets


@pytest.fixture
def unlabeled_run(tmp_path: Path) -> tuple[Path, dict[str, Predictions]]:
    datasets = {"demo": plain_dataset(with_labels=False)}
    return write_run(tmp_path / "run_nolabels", "hand_built", datasets), datasets
