"""Gather runs and write everything a sweep ends with: the leaderboard files and figures."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from imagenet_multilabel.core.errors import UserError, one_line
from imagenet_multilabel.reports.figures import write_figures
from imagenet_multilabel.reports.leaderboard import Leaderboard, gather

log = logging.getLogger(__name__)

FIGURES = "figures"


def write_report(
    paths: Iterable[str | Path],
    out: str | Path,
    sort: str | None = None,
    figures: bool = True,
    pair: Sequence[str] | None = None,
    reference: str | None = None,
) -> tuple[Leaderboard, list[Path]]:
    """Leaderboard of the runs in or below ``paths`` and its figures (``<out>/figures``),
    written into ``out``; returns it and the files written (the tables first). A figure
    that cannot be drawn is a note in the leaderboard, never a lost leaderboard.
    ``pair``: the datasets of the pair and gap figures; ``reference``: the testbed's
    reference dataset (:mod:`.figures`, :mod:`.testbed`)."""
    board = gather(paths, sort)
    written: list[Path] = []
    if figures:
        try:
            written, notes = write_figures(board, Path(out) / FIGURES, pair, reference)
            board.notes += notes
        except UserError as e:
            board.notes.append(f"no figures: {one_line(e)}")
        except Exception as e:  # a bug in drawing: the tables still get written
            log.exception("figures failed")
            board.notes.append(f"no figures: {type(e).__name__}: {one_line(e)}")
    written = board.write(out) + written
    for note in board.notes:
        log.warning("note: %s", note)
    return board, written
