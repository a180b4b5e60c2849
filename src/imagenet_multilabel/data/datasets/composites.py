"""PatchML-style composites: grids of real photos whose valid labels are known by
construction (the union of the tiles' labels), after Anzaku et al.'s PatchML.

They measure multi-label capability where no annotation exists. Each tile is preprocessed
with the model's own eval transform, so tiles keep the model's native input resolution and
a composite is larger than the model's usual input: convolutional models take it as is,
timm ViTs through ``model.kwargs.dynamic_img_size=true``. ``squeeze=true`` instead resizes
the whole grid to one native input (downscaled tiles: the bad comparison).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from imagenet_multilabel.core.classes import NUM_CLASSES
from imagenet_multilabel.core.errors import DataError
from imagenet_multilabel.data.datasets.folders import ImageDataset
from imagenet_multilabel.data.images import load_rgb


class CompositeDataset(ImageDataset):
    """Deterministic ``rows x cols`` grids of photos of distinct classes from ``base``.

    Composite ``i`` uses tiles ``tiles[i]`` (row-major positions); its file name joins the
    tiles' files with ``+``; its original single label is that of the first (top-left)
    tile; ``valid_labels`` is the multi-hot union of all tiles' labels.

    Args:
        base: a dataset of single-label photos (its own transform is not used).
        rows, cols: the grid; 2 to 4 tiles.
        num_images: number of composites (default: as many as whole grids fit in ``base``).
        seed: the tiles of every composite follow from it.
        squeeze: resize each composite to one tile's size (downscaled tiles).
    """

    name = "patchml"

    def __init__(
        self,
        base: ImageDataset,
        rows: int = 1,
        cols: int = 2,
        num_images: int | None = None,
        seed: int = 0,
        squeeze: bool = False,
        transform: Callable[[Any], torch.Tensor] | None = None,
        name: str | None = None,
    ) -> None:
        n_tiles = rows * cols
        if not 2 <= n_tiles <= 4:
            raise DataError(f"a composite has 2 to 4 tiles, not {rows}x{cols}: set data.rows/cols")
        if num_images is not None and (
            isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 1
        ):
            raise DataError(
                f"num_images={num_images!r} composites: give a number >= 1, or null for as "
                "many as whole grids fit in the base dataset"
            )
        if len(set(base.targets)) < n_tiles:
            raise DataError(f"{base.name} has fewer than {n_tiles} classes: cannot build grids")
        self.base, self.rows, self.cols, self.squeeze = base, rows, cols, squeeze
        count = num_images if num_images is not None else len(base) // n_tiles
        self.tiles = self._draw_tiles(np.asarray(base.targets), count, n_tiles, seed)
        files = ["+".join(base.files[t] for t in row) for row in self.tiles]
        targets = [base.targets[row[0]] for row in self.tiles]
        super().__init__(base.root, files, targets, transform, name)
        valid = torch.zeros(count, NUM_CLASSES, dtype=torch.bool)
        for i, row in enumerate(self.tiles):
            valid[i, [base.targets[t] for t in row]] = True
        self.valid_labels = valid

    def image_size(self, tile: tuple[int, int, int]) -> tuple[int, int, int]:
        """The ``(C, H, W)`` of a composite whose tiles are ``tile`` (the model's input)."""
        channels, height, width = tile
        return tuple(tile) if self.squeeze else (channels, height * self.rows, width * self.cols)

    @staticmethod
    def _draw_tiles(targets: np.ndarray, count: int, n_tiles: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        out = np.empty((count, n_tiles), dtype=np.int64)
        for i in range(count):
            while True:
                pick = rng.choice(len(targets), n_tiles, replace=False)
                if len(set(targets[pick].tolist())) == n_tiles:
                    out[i] = pick
                    break
        return out

    def __getitem__(self, index: int) -> dict[str, Any]:
        if self.transform is None:
            raise DataError("composites need the model's transform to build tiles")
        tiles = [
            self.transform(load_rgb(self.base.root / self.base.files[t])) for t in self.tiles[index]
        ]
        rows = [
            torch.cat(tiles[r * self.cols : (r + 1) * self.cols], dim=2) for r in range(self.rows)
        ]
        image = torch.cat(rows, dim=1)
        if self.squeeze:
            size = tiles[0].shape[1:]
            squeezed = F.interpolate(
                image[None].float(),
                size=size,
                mode="bicubic",
                antialias=True,
                align_corners=False,
            )[0]
            if image.dtype == torch.uint8:  # tiles not yet normalised (normalize_on_device)
                squeezed = squeezed.round_().clamp_(0, 255)
            image = squeezed.to(image.dtype)
        return {"image": image, "target": self.targets[index], "index": index}
