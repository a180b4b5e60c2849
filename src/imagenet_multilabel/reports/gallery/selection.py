"""Which images the gallery shows: per-image statistics of a run's logits (float64 softmax,
in row chunks, so 50,000 x 1000 logits take little memory) and a seeded sample of each
section, vectorised with numpy.

Rankings break ties by class index (the lower index ranks first), as the metrics do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHUNK_ROWS = 4096


def softmax64(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def ranking(logits: np.ndarray) -> np.ndarray:
    """Classes of each row from best to worst (ties: lower class index first)."""
    return np.argsort(-np.asarray(logits, dtype=np.float64), axis=1, kind="stable")


@dataclass(frozen=True)
class RowStats:
    """Per image: ``top1`` class, its softmax ``confidence``; with a label set also
    ``num_valid``, ``top1_valid`` and ``worst_rank`` (1-based rank of the lowest-ranked
    valid label, 0 for an empty set)."""

    top1: np.ndarray
    confidence: np.ndarray
    num_valid: np.ndarray | None = None
    top1_valid: np.ndarray | None = None
    worst_rank: np.ndarray | None = None


def row_stats(
    logits: np.ndarray, valid: np.ndarray | None = None, chunk_rows: int = CHUNK_ROWS
) -> RowStats:
    n, c = logits.shape
    top1 = np.empty(n, dtype=np.int64)
    confidence = np.empty(n, dtype=np.float64)
    worst = np.zeros(n, dtype=np.int64) if valid is not None else None
    cols = np.arange(c)
    for start in range(0, n, chunk_rows):
        rows = slice(start, min(start + chunk_rows, n))
        block = logits[rows]
        top1[rows] = block.argmax(axis=1)  # the first maximum: the lower class index
        z = block.astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        confidence[rows] = 1.0 / z.sum(axis=1)  # exp(0) / sum at the top-1 class
        if valid is None:
            continue
        v = valid[rows]
        lowest = np.where(v, block, np.inf).min(axis=1, keepdims=True)
        # among tied lowest valid scores, the higher class index ranks last
        at_lowest = v & (block == lowest)
        last = c - 1 - at_lowest[:, ::-1].argmax(axis=1)
        above = (block > lowest) | ((block == lowest) & (cols < last[:, None]))
        worst[rows] = np.where(v.any(axis=1), above.sum(axis=1) + 1, 0)
    if valid is None:
        return RowStats(top1, confidence)
    num_valid = valid.sum(axis=1).astype(np.int64)
    top1_valid = valid[np.arange(n), top1]
    return RowStats(top1, confidence, num_valid, top1_valid, worst)


@dataclass(frozen=True)
class SectionSpec:
    key: str
    title: str
    blurb: str


SECTIONS: dict[str, SectionSpec] = {
    s.key: s
    for s in (
        SectionSpec(
            "right_scored_wrong",
            "Right, but scored wrong",
            "Top-1 is not the original label, yet it is a valid label of the image: single-label "
            "top-1 counts these as errors. Most confident first.",
        ),
        SectionSpec(
            "confidently_wrong",
            "Confidently wrong",
            "Top-1 is outside the valid label set, with high probability: real errors. "
            "Most confident first.",
        ),
        SectionSpec(
            "missed_second",
            "Missed second objects",
            "Images with several valid labels, not all of them within the model's top k "
            "(k = the number of valid labels). Lowest-ranked valid label first.",
        ),
        SectionSpec(
            "no_label",
            "Where no label fits",
            "Images whose valid label set is empty: no ImageNet class describes them. "
            "Most confident first.",
        ),
        SectionSpec(
            "composites",
            "Composites: tiles and their labels",
            "Grids of photos whose valid labels are the tiles' labels; each tile shows its "
            "label and that label's rank in the model's ranking. Worst-found tile first.",
        ),
        SectionSpec(
            "wrong_top1",
            "Wrong top-1",
            "Top-1 is not the original label. Without a label set, this cannot tell a real "
            "error from a second object or an ambiguous label. Most confident first.",
        ),
    )
}


@dataclass(frozen=True)
class Section:
    spec: SectionSpec
    total: int  # images of the dataset in this section
    rows: np.ndarray  # the shown sample: dataset indices, in display order


def _pick(
    mask: np.ndarray, keys: tuple[np.ndarray, ...], per_section: int, rng: np.random.Generator
) -> tuple[int, np.ndarray]:
    """A seeded sample of at most ``per_section`` rows of ``mask``, ordered by ``keys``
    (ascending, the first key most significant; the dataset index breaks ties)."""
    rows = np.flatnonzero(mask)
    total = len(rows)
    if total > per_section:
        rows = np.sort(rng.choice(rows, per_section, replace=False))
    order = np.lexsort((rows, *(k[rows] for k in reversed(keys))))
    return total, rows[order]


def select_sections(
    stats: RowStats,
    target: np.ndarray,
    *,
    per_section: int,
    seed: int,
    confident: float,
    composite: bool = False,
) -> list[Section]:
    """The sections of one dataset, each a seeded sample (independent of the others: a
    section's sample depends only on its own images and the seed)."""
    wrong = stats.top1 != target
    by_confidence = (-stats.confidence,)
    if stats.num_valid is None:
        wanted = [("wrong_top1", wrong, by_confidence)]
    else:
        labeled = stats.num_valid > 0
        by_rank = (-stats.worst_rank, -stats.confidence)
        missed = (stats.num_valid >= 2) & (stats.worst_rank > stats.num_valid)
        wanted = [
            ("right_scored_wrong", wrong & stats.top1_valid, by_confidence),
            (
                "confidently_wrong",
                labeled & ~stats.top1_valid & (stats.confidence >= confident),
                by_confidence,
            ),
            ("missed_second", missed, by_rank),
            ("no_label", ~labeled, by_confidence),
        ]
        if composite:
            wanted.append(("composites", np.ones_like(labeled), by_rank))
    sections = []
    for number, (key, mask, keys) in enumerate(wanted):
        rng = np.random.default_rng([seed, number])
        total, rows = _pick(mask, keys, per_section, rng)
        sections.append(Section(SECTIONS[key], total, rows))
    return sections
