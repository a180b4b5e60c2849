"""Fixtures of the task tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from imagenet_multilabel.data.datasets.folders import DEMO_ROOT


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """24 real demo photos, one class each."""
    root = tmp_path / "photos"
    root.mkdir()
    for path in sorted(DEMO_ROOT.glob("*.JPEG"))[::4][:24]:
        shutil.copy(path, root / path.name)
    return root
