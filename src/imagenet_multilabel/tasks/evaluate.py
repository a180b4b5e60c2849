"""evaluate: one backbone, one or more datasets, single- and multi-label heads.

config -> backbone + preprocessing -> datasets x label sets -> Trainer.validate ->
metrics.json, run.json, predictions/<dataset>.npz (rank 0 only).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from ..config import build_dataset, build_heads, dataset_specs, instantiate_map, labels_spec
from ..data.module import EvalDataModule
from ..data.transforms import Normalize, eval_transform, resolve_preprocessing
from ..errors import UserError
from ..lit.evaluation import EvaluationModule, flat_metrics
from ..models.backbones import create_backbone
from ..outputs import write_json, write_predictions
from ..report import print_summary
from ..runinfo import git_commit, host_info, package_versions
from ..runtime import keep_freed_memory, set_cpu_threads

log = logging.getLogger(__name__)


def resolve_labels(spec: DictConfig | None, dataset) -> tuple[torch.Tensor | None, dict[str, Any]]:
    """The valid-label matrix of ``dataset`` under a labels spec, and what to record of it."""
    node = OmegaConf.to_container(spec, resolve=True) if spec is not None else {"name": "auto"}
    name = node.get("name", "auto")
    if name == "auto":
        intrinsic = getattr(dataset, "valid_labels", None)
        if intrinsic is not None:
            return intrinsic, {"labels": "intrinsic"}
        default = getattr(dataset, "default_labels", None)
        if default is None:
            return None, {"labels": "none"}
        node = OmegaConf.to_container(labels_spec(default), resolve=True)
        name = node.get("name", default)
    if name == "none" or "_target_" not in node:
        return None, {"labels": "none"}
    from hydra.utils import instantiate

    allow_missing = bool(node.pop("allow_missing", False))
    label_set = instantiate(node, _convert_="all")
    joined = label_set.join(dataset.file_names, allow_missing=allow_missing)
    return joined.valid, {
        "labels": label_set.name,
        "num_empty_label_sets": joined.num_empty,
        "num_missing_from_labels": joined.num_missing,
    }


def output_dir(cfg: DictConfig) -> Path:
    return Path(cfg.paths.output_dir)


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Run an evaluation; returns the flat metrics (also written to metrics.json)."""
    started = time.perf_counter()
    cpu_parallel = cfg.get("cpu_parallel", "batches")
    if cpu_parallel not in ("batches", "ops"):
        raise UserError(f"cpu_parallel must be 'batches' or 'ops', got {cpu_parallel!r}")
    kept = keep_freed_memory() if cfg.get("keep_freed_memory", True) else False
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    model, weights_source = create_backbone(
        cfg.model.name,
        weights=cfg.model.weights,
        checkpoint=cfg.model.get("checkpoint"),
        kwargs=OmegaConf.to_container(cfg.model.kwargs) if cfg.model.get("kwargs") else None,
    )
    preprocessing = resolve_preprocessing(model, OmegaConf.to_container(cfg.preprocess))
    on_device = cfg.normalize_on_device
    transform = eval_transform(preprocessing, normalize=not on_device)

    datasets, valid, data_info = {}, {}, {}
    for name, spec in dataset_specs(cfg.data).items():
        dataset = build_dataset(spec, name, transform)
        labels = spec.get("labels") if "labels" in spec else cfg.get("labels")
        valid[name], label_info = resolve_labels(labels, dataset)
        datasets[name] = dataset
        data_info[name] = {
            "class": type(dataset).__name__,
            "root": str(dataset.root),
            "num_images": len(dataset),
            **label_info,
        }

    heads, optional = build_heads(cfg.head)

    datamodule = EvalDataModule(
        datasets,
        valid,
        batch_size=cfg.batch_size,
        num_workers=cfg.num_workers,
        prefetch_factor=cfg.get("prefetch_factor"),
    )
    module = EvaluationModule(
        model,
        heads,
        {n: len(d) for n, d in datasets.items()},
        with_valid={n for n, v in valid.items() if v is not None},
        optional_heads=optional,
        channels_last=cfg.channels_last,
        forward_batch_size=cfg.batch_size,
        normalize=Normalize(preprocessing["mean"], preprocessing["std"]) if on_device else None,
    )
    if cfg.compile:
        module.backbone.compile()
    loggers = list(instantiate_map(cfg.get("logger")).values())
    callbacks = list(instantiate_map(cfg.get("callbacks")).values())
    trainer: L.Trainer = _instantiate_trainer(cfg.trainer, loggers, callbacks)
    threads = set_cpu_threads(cfg.cpu_threads, cfg.num_workers, trainer.num_devices)
    module.parallel_batches = threads if cpu_parallel == "batches" else 1

    forward_start = time.perf_counter()
    try:
        trainer.validate(module, datamodule=datamodule, verbose=False)
    finally:
        module.release()
        if trainer.is_global_zero:
            finish_wandb(loggers)  # a multirun's next job must start a new W&B run
    validate_seconds = time.perf_counter() - forward_start

    per_dataset = {name: metrics for name, (metrics, _) in module.results.items()}
    metrics = flat_metrics(per_dataset)
    if not trainer.is_global_zero:
        return metrics

    out = output_dir(cfg)
    for name, (_, preds) in module.results.items():
        write_predictions(
            out / "predictions" / f"{name}.npz",
            index=torch.arange(len(preds)).numpy(),
            files=datasets[name].files,
            target=preds.target.numpy(),
            logits=preds.logits.numpy(),
            valid=None if preds.valid is None else preds.valid.numpy(),
            logits_dtype=cfg.predictions.logits_dtype,
        )
    num_images = sum(len(d) for d in datasets.values())
    wall = time.perf_counter() - started
    run = {
        "task": "evaluate",
        "model": {
            "name": cfg.model.name,
            "weights": weights_source,
            "num_params": sum(p.numel() for p in model.parameters()),
        },
        "preprocessing": preprocessing,
        "datasets": data_info,
        "heads": list(heads),
        "seed": cfg.seed,
        "batch_size": cfg.batch_size,
        "num_workers": cfg.num_workers,
        "channels_last": cfg.channels_last,
        "cpu_threads": threads,
        "cpu_parallel": cpu_parallel if trainer.strategy.root_device.type == "cpu" else None,
        "normalize_on_device": on_device,
        "keep_freed_memory": kept,
        "compile": cfg.compile,
        "trainer": {
            "accelerator": str(cfg.trainer.accelerator),
            "devices": trainer.num_devices,
            "num_nodes": trainer.num_nodes,
            "world_size": trainer.world_size,
            "precision": str(cfg.trainer.precision),
        },
        "num_images": num_images,
        "wall_seconds": round(wall, 3),
        "validate_seconds": round(validate_seconds, 3),
        "images_per_second": round(num_images / validate_seconds, 2),
        "versions": package_versions(),
        "git_commit": git_commit(),
        "host": host_info(),
    }
    write_json(out / "run.json", run)
    write_json(out / "metrics.json", metrics)  # last: its presence marks a complete run
    print_summary(
        per_dataset,
        title=f"{cfg.model.name} ({num_images} images, {run['images_per_second']:.1f} img/s)",
    )
    log.info("wrote %s", out / "metrics.json")
    return metrics


def finish_wandb(loggers: list) -> None:
    from lightning.pytorch.loggers import WandbLogger

    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.experiment.finish()


def _instantiate_trainer(node: DictConfig, loggers: list, callbacks: list) -> L.Trainer:
    from hydra.utils import instantiate

    return instantiate(node, logger=loggers or False, callbacks=callbacks, _convert_="all")
