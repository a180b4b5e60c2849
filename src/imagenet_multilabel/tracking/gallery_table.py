"""The gallery's samples as a W&B table (needs ``pip install wandb``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imagenet_multilabel.core.errors import UserError
from imagenet_multilabel.reports.gallery.thumbnails import thumbnail

COLUMNS = ("dataset", "section", "file", "label", "valid", "top5", "confidence", "num_valid")


def wandb_table(rows: Sequence[dict[str, Any]], thumb_size: int = 160) -> Any:
    """A ``wandb.Table`` of :func:`~imagenet_multilabel.reports.gallery.gallery_rows`, with a
    thumbnail (not the full photo) per row; log it with ``run.log({"gallery": table})``."""
    try:
        import wandb
    except ImportError:
        raise UserError("the W&B gallery table needs wandb: pip install wandb") from None
    table = wandb.Table(columns=["image", *COLUMNS])
    for row in rows:
        small = thumbnail(Path(row["image"]), thumb_size) if row["image"] else None
        image = wandb.Image(small) if small is not None else None
        table.add_data(image, *(row[c] for c in COLUMNS))
    return table
