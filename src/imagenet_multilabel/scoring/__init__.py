"""Scoring: heads, the Scorer and the metrics; the public metric API is
:class:`MultiLabelCapability` and :func:`multilabel_capability` (docs/metrics-api.md)."""

_PUBLIC = ("MultiLabelCapability", "multilabel_capability", "capability_scorer")
__all__ = list(_PUBLIC)


def __getattr__(name: str):
    # lazy: the config check imports scoring.metrics.names and must not import torch
    if name in _PUBLIC:
        from imagenet_multilabel.scoring import capability  # torch: see the comment above

        return getattr(capability, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
