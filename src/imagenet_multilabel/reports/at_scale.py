"""What keeps a leaderboard of hundreds of rows readable: a summary that leads
leaderboard.md (the best and worst rows by the sorted column, the failures grouped by
reason) and notes that name at most a few models each."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

SHOWN_ROWS = 5  # best and worst rows named in the summary
SHOWN_NAMES = 5  # models named in one note or one failure reason
LARGE = 20  # rows from which the summary is written


def short_list(names: Sequence[str], shown: int = SHOWN_NAMES) -> str:
    """``a, b, c and 12 more`` (all of them where there are few)."""
    names = list(names)
    if len(names) <= shown + 1:
        return ", ".join(names)
    return f"{', '.join(names[:shown])} and {len(names) - shown} more"


_LIST = re.compile(r"^(?P<head>[^:]*? of )(?P<names>[^:]+?)(?P<tail>: .*)$")


def short_note(note: str, shown: int = SHOWN_NAMES) -> str:
    """A note ``... of a, b, c, ...: reason`` with its list of models shortened."""
    match = _LIST.match(note)
    if not match:
        return note
    names = [n.strip() for n in match["names"].split(",")]
    if len(names) <= shown + 1:
        return note
    return f"{match['head']}{short_list(names, shown)} ({len(names)} models){match['tail']}"


def summary_lines(board: Any, shown: int = SHOWN_ROWS) -> list[str]:
    """The summary of a large leaderboard (``board``: reports.leaderboard.Leaderboard);
    none where it has fewer than :data:`LARGE` rows."""
    if len(board.rows) < LARGE:
        return []
    lines = ["## Summary", ""]
    column = board.sort
    done = [r for r in board.rows if r.done]
    if column:
        scored = [(r.value(column), r.model) for r in done]
        scored = [(v, m) for v, m in scored if not math.isnan(v)]
        if scored:
            values = sorted(v for v, _ in scored)
            median = values[len(values) // 2]
            best = ", ".join(f"{m} {v:.2f}" for v, m in board_order(scored)[:shown])
            worst = ", ".join(f"{m} {v:.2f}" for v, m in board_order(scored)[-shown:])
            lines += [
                f"- {len(scored)} rows with {column}: median {median:.2f}, "
                f"from {values[0]:.2f} to {values[-1]:.2f}",
                f"- best {min(shown, len(scored))}: {best}",
                f"- last {min(shown, len(scored))}: {worst}",
            ]
    reasons: dict[str, list[str]] = {}
    for row in board.rows:
        for failure in row.failures:
            models = reasons.setdefault(str(failure.get("error")), [])
            models += [] if row.model in models else [row.model]
    if reasons:
        count = sum(len(m) for m in reasons.values())
        lines.append(f"- {count} models with failed jobs, {len(reasons)} reason(s):")
        for reason, models in sorted(reasons.items(), key=lambda kv: -len(kv[1])):
            lines.append(f"  - {len(models)}x {reason} ({short_list(models)})")
    return [*lines, ""]


def board_order(scored: list[tuple[float, str]]) -> list[tuple[float, str]]:
    """(value, model) best first (the leaderboard's rows are sorted that way already;
    kept here so that the summary does not depend on it)."""
    return sorted(scored, key=lambda vm: -vm[0])


FIGURE_ROWS = 10  # bars per end of a figure of many models


def figure_rows(rows: Sequence[Any], shown: int = FIGURE_ROWS) -> tuple[list[Any], str]:
    """The rows a per-model figure draws (the leaderboard's order, best first): all of
    them, or the first and last ``shown`` where there are more than twice as many; and the
    words its title adds (``""`` or ``"first 10 and last 10 of 155"``)."""
    rows = list(rows)
    if len(rows) <= 2 * shown:
        return rows, ""
    return rows[:shown] + rows[-shown:], f"first {shown} and last {shown} of {len(rows)}"
