"""Backbones (timm models and their weight sources) and heads."""

from imagenet_multilabel.models import testing  # noqa: F401  (registers the test models with timm)
