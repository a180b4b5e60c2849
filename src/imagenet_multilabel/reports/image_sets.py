"""The leaderboard's check that the rows of one dataset counted the same images (the
``images_sha256`` each result's metrics.json records: runs/image_sets.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol


class _Row(Protocol):
    model: str
    image_sets: Mapping[str, Mapping[str, Any]]


def mixed_image_sets(rows: Sequence[_Row]) -> list[str]:
    """A note per dataset whose rows scored different image sets (another hash of the
    sorted image ids): their numbers were measured on other images and do not compare.
    Rows of results that record no image set (older versions) are left out."""
    notes = []
    for dataset in dict.fromkeys(d for r in rows for d in r.image_sets):
        groups: dict[str, list[_Row]] = {}
        for row in rows:
            found = row.image_sets.get(dataset) or {}
            if found.get("images_sha256"):
                groups.setdefault(str(found["images_sha256"]), []).append(row)
        if len(groups) > 1:
            parts = [
                f"{len(group)} row(s) ({', '.join(dict.fromkeys(r.model for r in group))}): "
                f"{group[0].image_sets[dataset].get('num_distinct_images')} images, "
                f"sha256 {sha[:12]}"
                for sha, group in sorted(groups.items(), key=lambda g: -len(g[1]))
            ]
            notes.append(
                f"{dataset}: rows scored different image sets ({'; '.join(parts)}); "
                "their numbers do not compare"
            )
    return notes
