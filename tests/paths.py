"""Where the checkout and the shared data are: imported by tests/helpers.py and by the
audit plugin (tests/shared_audit.py), which must load without torch."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _shared_data() -> Path:
    """``$IMAGENET_ML_SHARED`` if set, else ``../shared/data`` beside this checkout."""
    env = os.environ.get("IMAGENET_ML_SHARED")
    return Path(env).expanduser() if env else REPO.parent / "shared" / "data"


SHARED = _shared_data()
