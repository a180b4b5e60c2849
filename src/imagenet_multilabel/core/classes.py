"""The ImageNet-1k class space: WordNet ids, names, and index lookups (from timm's info)."""

from __future__ import annotations

from functools import cache

NUM_CLASSES = 1000


@cache
def _info():
    from timm.data import ImageNetInfo  # timm imports torch: only when the class names are read

    return ImageNetInfo("imagenet-1k")


@cache
def wnids() -> tuple[str, ...]:
    """The 1000 WordNet ids in the standard ImageNet-1k index order (sorted)."""
    names = tuple(_info().label_names())
    assert len(names) == NUM_CLASSES and list(names) == sorted(names)
    return names


@cache
def wnid_to_index() -> dict[str, int]:
    return {w: i for i, w in enumerate(wnids())}


@cache
def class_names() -> tuple[str, ...]:
    """Short human-readable names (first lemma), index-aligned with :func:`wnids`."""
    return tuple(d.split(",")[0].strip() for d in _info().label_descriptions())


def is_wnid(name: str) -> bool:
    return name in wnid_to_index()
