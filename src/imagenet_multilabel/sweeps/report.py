"""Gather runs and write everything a sweep ends with: the leaderboard files and figures."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from .table import Leaderboard, gather

log = logging.getLogger(__name__)


def write_report(
    paths: Iterable[str | Path], out: str | Path, sort: str | None = None, figures: bool = True
) -> tuple[Leaderboard, list[Path]]:
    """Leaderboard of the runs in or below ``paths``, written into ``out``; returns it and
    the files written."""
    board = gather(paths, sort)
    written = board.write(out)
    for note in board.notes:
        log.warning("note: %s", note)
    return board, written
