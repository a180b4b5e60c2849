"""Metrics: one functional core (functional.py) and torchmetrics classes over it."""
