"""score: recompute every metric of a finished run from its saved predictions, with any
label set, without the model.

    python -m imagenet_multilabel score run_dir=outputs/evaluate/<run> labels=real
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from imagenet_multilabel.builders import build_scorer
from imagenet_multilabel.core.classes import NUM_CLASSES
from imagenet_multilabel.core.errors import DataError, UserError
from imagenet_multilabel.core.files import write_json
from imagenet_multilabel.data.labels.sets import resolve_labels
from imagenet_multilabel.runs.image_sets import scored_image_set
from imagenet_multilabel.runs.rundir import RunDir
from imagenet_multilabel.runs.summary import print_summary
from imagenet_multilabel.scoring.metrics.names import flatten_metrics
from imagenet_multilabel.scoring.scorer import Scorer

log = logging.getLogger(__name__)


def score(cfg: DictConfig) -> dict[str, float]:
    if not cfg.get("run_dir"):
        raise UserError("no run given: pass run_dir=outputs/evaluate/<run>")
    run = RunDir(cfg.run_dir)
    out = Path(cfg.paths.output_dir)
    if out.resolve() == run.path.resolve():
        raise UserError(
            f"the output folder is the scored run's own folder {run.path}: choose another "
            "with hydra.run.dir=..."
        )
    scorer = build_scorer(cfg.head, cfg.get("nonfinite_logits", "error"))
    labels = OmegaConf.to_container(cfg.labels, resolve=True) if cfg.get("labels") else None
    per_dataset, label_info = rescore_run(run, scorer, labels, cfg.get("dataset"))

    metrics = flatten_metrics(per_dataset)
    write_json(
        out / "run.json",
        {
            "task": "score",
            "source_run": str(run.path.resolve()),
            "model": run.info.get("model"),
            "labels": label_info,
            "heads": scorer.names,
        },
    )
    write_json(out / "metrics.json", metrics)
    print_summary(per_dataset, title=f"re-scored {run.path.name}")
    log.info("wrote %s", out / "metrics.json")
    return metrics


def rescore_run(
    run: RunDir, scorer: Scorer, labels: Mapping[str, Any] | None, only: str | None = None
) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """Every metric of ``run``'s saved predictions (of dataset ``only``, or all), with the
    label set ``labels`` (None or ``name: auto``: the ones stored with the predictions) and
    the run's class subsets: ``({dataset: metrics}, {dataset: label-set info})``. Used by
    ``score`` and by a sweep job whose metric set has grown (sweeps/job.py)."""
    files = dict(run.prediction_files)
    if not files:
        raise DataError(f"{run.path} holds no predictions/*.npz: pass the folder of a finished run")
    if only is not None:
        run.predictions(only)  # the error names the datasets there are
        files = {only: files[only]}
    per_dataset, label_info = {}, {}
    for name in files:
        data = run.predictions(name)
        logits = torch.from_numpy(data["logits"].astype("float32"))
        if logits.shape[1] != NUM_CLASSES:
            raise DataError(
                f"{files[name]} holds logits over {logits.shape[1]} classes, not the "
                f"{NUM_CLASSES} ImageNet-1k classes the label sets use"
            )
        stored = torch.from_numpy(data["valid"]) if "valid" in data else None
        file_names = [str(p).rsplit("/", 1)[-1] for p in data["path"]]
        main = torch.from_numpy(data["main"].astype("int64")) if "main" in data else None
        resolved = resolve_labels(labels, file_names, intrinsic=stored, intrinsic_main=main)
        label_info[name] = resolved.info
        subset = run.info.get("datasets", {}).get(name, {}).get("class_subset")
        per_dataset[name] = scorer.score(
            name,
            logits,
            torch.from_numpy(data["target"]),
            resolved.valid,
            subset,
            main=resolved.main,
        )
        per_dataset[name].update(scored_image_set(data["path"], data["index"]))
    return per_dataset, label_info
