"""evaluate: one backbone, one or more datasets, single- and multi-label heads.

config -> builders (backbone + preprocessing, datasets x label sets, scorer, trainer) ->
Trainer.validate -> metrics.json, run.json, predictions/<dataset>.npz (rank 0 only).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path

import lightning as L
from omegaconf import DictConfig

from imagenet_multilabel.builders import (
    build_backbone,
    build_datamodule,
    build_datasets,
    build_loggers,
    build_scorer,
    build_trainer,
)
from imagenet_multilabel.core.distributed import is_global_zero
from imagenet_multilabel.core.files import write_json
from imagenet_multilabel.core.runtime import (
    keep_freed_memory,
    process_resources,
    set_cpu_threads,
)
from imagenet_multilabel.data.evalset import EvalSet
from imagenet_multilabel.data.loading.settings import loader_settings
from imagenet_multilabel.data.loading.transforms import Normalize
from imagenet_multilabel.lit.evaluation import EvaluationModule
from imagenet_multilabel.models.backbones import Backbone
from imagenet_multilabel.models.checks import check_input_sizes, check_model
from imagenet_multilabel.reports.gallery.build import write_gallery
from imagenet_multilabel.runs.image_sets import scored_image_set
from imagenet_multilabel.runs.predictions import write_set_predictions
from imagenet_multilabel.runs.record import run_record
from imagenet_multilabel.runs.rundir import forget_result, start_run_dir
from imagenet_multilabel.runs.summary import print_summary
from imagenet_multilabel.scoring.checks import check_optimized_metric, check_optimized_metric_name
from imagenet_multilabel.scoring.metrics.names import flatten_metrics
from imagenet_multilabel.scoring.scorer import Scorer
from imagenet_multilabel.tracking.session import finish_wandb, log_finished_run

log = logging.getLogger(__name__)


def job_timings(started: float, forward_start: float, module: EvaluationModule) -> dict:
    """Where a run's time went: start-up (config check to the loaders' start: model,
    datasets, trainer), the first batch (loader start, decoding, first forward), scoring."""
    first = module.first_batch_done
    return {
        "startup_s": round(forward_start - started, 3),
        "first_batch_s": round(first - forward_start, 3) if first is not None else None,
        "scoring_s": round(module.scoring_seconds or 0.0, 3),
    }


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Run an evaluation of a checked config (``checks.check_run_settings``: evaluate.py
    runs it first); returns the metrics as written to metrics.json
    (``<dataset>/<metric>`` keys)."""
    started = time.perf_counter()
    # what needs timm is checked here, before the model is created
    check_model(cfg.model)
    out = Path(cfg.paths.output_dir)
    if is_global_zero():
        start_run_dir(out)
    sets = build_datasets(cfg.data, cfg.get("labels"), transform=None)
    scorer = build_scorer(cfg.head, cfg.get("nonfinite_logits", "error"))
    _check_heads(cfg, scorer, sets)

    kept = keep_freed_memory() if cfg.get("keep_freed_memory", True) else False
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    backbone = build_backbone(cfg)
    check_input_sizes(
        backbone.model, backbone.preprocessing, {n: s.dataset for n, s in sets.items()}
    )
    transform = backbone.eval_transform(normalize=not cfg.normalize_on_device)
    for s in sets.values():
        s.dataset.transform = transform
    loggers = build_loggers(cfg)
    trainer = build_trainer(cfg, loggers)
    loader = loader_settings(cfg, trainer)
    threads = set_cpu_threads(cfg.cpu_threads, loader.num_workers, trainer.num_devices)
    module = _evaluation_module(cfg, backbone, scorer, sets, loader.batch_size, threads)

    datamodule = build_datamodule(cfg, loader, sets)  # fills the decode cache first, if set
    forward_start = time.perf_counter()
    try:
        trainer.validate(module, datamodule=datamodule, verbose=False)
    except BaseException:
        if trainer.is_global_zero:
            finish_wandb(loggers, failed=True)
        raise
    finally:
        module.release()
    validate_seconds = time.perf_counter() - forward_start

    per_dataset = {name: metrics for name, (metrics, _) in module.results.items()}
    metrics = flatten_metrics(per_dataset)
    if not trainer.is_global_zero:
        return metrics

    check_optimized_metric(metrics, cfg.get("optimized_metric"))  # before anything is written
    for name, (_, preds) in module.results.items():  # and which images each result counted
        write_set_predictions(out, name, sets[name], preds, cfg.predictions.logits_dtype)
        per_dataset[name].update(scored_image_set(sets[name].dataset.files, preds.index))
    metrics = flatten_metrics(per_dataset)
    num_images = sum(len(s.dataset) for s in sets.values())
    run = run_record(
        cfg, backbone, sets, scorer.names, trainer, loader, threads, kept, module.channels_last
    )
    run.update(
        num_images=num_images,
        wall_seconds=round(time.perf_counter() - started, 3),
        validate_seconds=round(validate_seconds, 3),
        images_per_second=round(num_images / validate_seconds, 2),
        decode_cache=datamodule.decode_cache,
        timings=job_timings(started, forward_start, module),
        resources=process_resources(),
    )
    write_json(out / "run.json", run)
    write_json(out / "metrics.json", metrics)  # last: its presence marks a complete run
    if cfg.get("gallery"):
        try:
            write_gallery(out, cfg.gallery)
        except BaseException:  # not finished: no metrics.json (the rest stays, to look at)
            forget_result(out)
            raise
    log_finished_run(loggers, out)  # W&B: tables and figures of the run, then it ends
    print_summary(
        per_dataset,
        title=f"{cfg.model.name} ({num_images} images, {run['images_per_second']:.1f} img/s)",
    )
    log.info("wrote %s", out / "metrics.json")
    return metrics


def _check_heads(cfg: DictConfig, scorer: Scorer, sets: Mapping[str, EvalSet]) -> None:
    """Before the model is created: every head that needs a label set has one, and
    ``optimized_metric`` is among the metrics the heads will write for these datasets."""
    labelled = {name: s.valid is not None for name, s in sets.items()}
    scorer.check_labels(labelled)
    if cfg.get("optimized_metric"):
        single = set(scorer.metric_names(False)) if not all(labelled.values()) else set()
        multi = set(scorer.metric_names(True)) if any(labelled.values()) else set()
        check_optimized_metric_name(cfg.optimized_metric, labelled, single, multi)


def _evaluation_module(
    cfg: DictConfig,
    backbone: Backbone,
    scorer: Scorer,
    sets: Mapping[str, EvalSet],
    batch_size: int,
    threads: int,
) -> EvaluationModule:
    """The LightningModule that runs the backbone over every dataset and scores it."""
    module = EvaluationModule(
        backbone.model,
        scorer,
        {name: len(s.dataset) for name, s in sets.items()},
        with_valid={name for name, s in sets.items() if s.valid is not None},
        channels_last=cfg.channels_last,
        forward_batch_size=batch_size,
        normalize=Normalize(backbone.preprocessing["mean"], backbone.preprocessing["std"])
        if cfg.normalize_on_device
        else None,
        parallel_batches=threads if cfg.get("cpu_parallel", "batches") == "batches" else 1,
        class_subsets={name: s.dataset.class_subset for name, s in sets.items()},
        main_labels={name: s.main for name, s in sets.items()},
    )
    if cfg.compile:
        module.backbone.compile()
    return module
