"""The one writer of a run's per-image predictions: ``predictions/<name>.npz`` for a
dataset's gathered predictions (evaluate: one per dataset; train: each held-out set
fine-tuned, and ``<set>@pretrained``)."""

from __future__ import annotations

from pathlib import Path

import torch

from imagenet_multilabel.data.evalset import EvalSet
from imagenet_multilabel.runs.rundir import write_predictions
from imagenet_multilabel.scoring.metrics.buffer import Predictions


def write_set_predictions(
    out: Path, name: str, evalset: EvalSet, preds: Predictions, logits_dtype: str
) -> Path:
    """``<out>/predictions/<name>.npz``: the images of ``evalset`` in dataset order, their
    logits (as ``logits_dtype``), targets, label set and main objects (where it names
    them). Returns the file's path."""
    path = out / "predictions" / f"{name}.npz"
    write_predictions(
        path,
        index=torch.arange(len(preds)).numpy(),
        files=evalset.dataset.files,
        target=preds.target.numpy(),
        logits=preds.logits.detach().numpy(),
        valid=None if preds.valid is None else preds.valid.numpy(),
        main=None if evalset.main is None else evalset.main.numpy(),
        logits_dtype=logits_dtype,
    )
    return path
