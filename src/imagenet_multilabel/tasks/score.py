"""score: recompute every metric of a finished run from its saved predictions, with any
label set, without the model.

    python -m imagenet_multilabel.score run_dir=outputs/evaluate/<run> labels=real
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import torch
from omegaconf import DictConfig

from ..classes import NUM_CLASSES
from ..config import build_heads
from ..errors import DataError, UserError
from ..lit.evaluation import flat_metrics
from ..models.heads import apply_heads
from ..outputs import read_json, read_predictions, write_json
from ..report import print_summary
from .evaluate import resolve_labels

log = logging.getLogger(__name__)


def prediction_files(run_dir: Path) -> dict[str, Path]:
    files = sorted((run_dir / "predictions").glob("*.npz"))
    if not files:
        raise DataError(f"{run_dir} holds no predictions/*.npz: pass the folder of a finished run")
    if not (run_dir / "metrics.json").is_file():
        raise DataError(f"{run_dir} has no metrics.json: that run did not finish")
    return {p.stem: p for p in files}


def score(cfg: DictConfig) -> dict[str, float]:
    if not cfg.get("run_dir"):
        raise UserError("no run given: pass run_dir=outputs/evaluate/<run>")
    run_dir = Path(cfg.run_dir).expanduser()
    files = prediction_files(run_dir)
    only = cfg.get("dataset")
    if only is not None:
        if only not in files:
            raise DataError(f"run {run_dir} has no dataset '{only}' (it has {', '.join(files)})")
        files = {only: files[only]}
    run = read_json(run_dir / "run.json")

    heads, optional = build_heads(cfg.head)
    per_dataset, label_info = {}, {}
    for name, path in files.items():
        data = read_predictions(path)
        logits = torch.from_numpy(data["logits"].astype("float32"))
        if logits.shape[1] != NUM_CLASSES:
            raise DataError(
                f"{path} holds logits over {logits.shape[1]} classes, not the {NUM_CLASSES} "
                "ImageNet-1k classes the label sets use"
            )
        stored = torch.from_numpy(data["valid"]) if "valid" in data else None
        view = SimpleNamespace(
            file_names=[str(p).rsplit("/", 1)[-1] for p in data["path"]],
            valid_labels=stored,
            default_labels=None,
        )
        valid, label_info[name] = resolve_labels(cfg.get("labels"), view)
        per_dataset[name] = apply_heads(
            heads, logits, torch.from_numpy(data["target"]), valid, name, optional
        )

    metrics = flat_metrics(per_dataset)
    out = Path(cfg.paths.output_dir)
    write_json(
        out / "run.json",
        {
            "task": "score",
            "source_run": str(run_dir.resolve()),
            "model": run.get("model"),
            "labels": label_info,
            "heads": list(heads),
        },
    )
    write_json(out / "metrics.json", metrics)
    print_summary(per_dataset, title=f"re-scored {run_dir.name}")
    log.info("wrote %s", out / "metrics.json")
    return metrics
