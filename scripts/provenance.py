"""The SHA-256 lines of a derived label file's PROVENANCE.md (its sources', its own), for
the scripts that build the package's vendored label files (``build_real_scores.py``,
``build_tsipras_labels.py``) to print, to be copied into the PROVENANCE.md beside the
files (``src/imagenet_multilabel/assets/labels/<set>/PROVENANCE.md``)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from imagenet_multilabel.data.fingerprint import file_sha256


def print_provenance(sources: Iterable[Path], written: Iterable[Path]) -> None:
    """One line per file: ``SHA-256 of the source <name>: <hex>`` for what was read,
    ``SHA-256 of <name>: <hex>`` for what was written."""
    for path in sources:
        print(f"SHA-256 of the source {path.name}: {file_sha256(path)}")
    for path in written:
        print(f"SHA-256 of {path.name}: {file_sha256(path)}")
