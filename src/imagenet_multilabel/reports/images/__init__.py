"""A run's photos on pages: where they are on disk and which class each composite tile
shows (``photos``), thumbnails (``thumbnails``, the one place photos are made small) and
exemplars of a class (``exemplars``). The gallery, propose's review page and the W&B
per-image table all use them."""
