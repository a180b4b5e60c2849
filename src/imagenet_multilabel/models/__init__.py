"""Backbones (timm models and their weight sources) and heads."""

from . import testing  # noqa: F401  (registers the test models with timm)
