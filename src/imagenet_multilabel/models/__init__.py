"""Backbones (timm models and their weight sources) and heads."""
