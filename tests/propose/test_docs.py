"""docs/propose.md quotes the recall of the label proposals from docs/propose_recall.md
(written by benchmarks/propose_recall.py): the rows it shows are rows of that table."""

from __future__ import annotations

from imagenet_multilabel.propose.candidates import DEFAULT_MAX_CANDIDATES, DEFAULT_TOP_K
from tests.helpers import REPO


def _table_rows(text: str) -> list[list[str]]:
    """The cells of every row of the Markdown tables in ``text`` (bold marks dropped), the
    separator rows left out."""
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not set(line) <= set("|-: "):
            rows.append([c.strip().replace("**", "") for c in line.strip().strip("|").split("|")])
    return rows


def test_the_recall_propose_md_quotes_is_propose_recall_md_s() -> None:
    guide = (REPO / "docs" / "propose.md").read_text(encoding="utf-8")
    section = guide.split("## How good are the proposals?")[1].split("\n## ")[0]
    quoted = _table_rows(section)
    measured = _table_rows((REPO / "docs" / "propose_recall.md").read_text(encoding="utf-8"))
    assert quoted[0] == measured[0]  # the same columns
    assert len(quoted) > 3
    assert [row for row in quoted[1:] if row not in measured] == []
    default = f"top-{DEFAULT_TOP_K}, max {DEFAULT_MAX_CANDIDATES}"
    assert f"The default rule (in bold) is {default}." in " ".join(section.split())
    bold = [line for line in section.splitlines() if line.startswith("| **")]
    assert len(bold) == 1 and f"**{default}**" in bold[0]
