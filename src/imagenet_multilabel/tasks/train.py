"""train: fine-tune a pretrained backbone with a multi-label loss, and compare it with the
pretrained one on held-out images of trained classes, on classes held out of training
(forgetting) and on single photos of every class, with the heads evaluate reports.

config -> checks (those that need torch, before anything is built or read) -> builders
(backbone, photos, split, scorer, trainer) -> one pass over the held-out sets (pretrained
logits; pooled features too, the inputs of head-only training: ``feature_cache.py``) ->
Trainer.fit (``training/fit.py``; validation through the evaluation path; resumed from a
checkpoint of the same run: ``training/resume.py``) -> the best checkpoint evaluated as
evaluate.py would (``final_scoring.py``) -> predictions/, split.json, run.json,
metrics.json (last).

metrics.json keys: ``<set>/pretrained.<metric>``, ``<set>/finetuned.<metric>`` and
``<set>/delta.<metric>`` (fine-tuned minus pretrained), and which images the set's result
counted, ``<set>/num_distinct_images`` and ``<set>/images_sha256`` (as evaluate.py writes
them; RunDir keeps them apart from the metrics).
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf

from imagenet_multilabel.builders import (
    build_backbone,
    build_datasets,
    build_loggers,
    build_scorer,
    build_trainer,
)
from imagenet_multilabel.core.checkpoints import resume_path
from imagenet_multilabel.core.errors import Interrupted, UserError, find_user_error
from imagenet_multilabel.core.files import write_json
from imagenet_multilabel.core.runtime import keep_freed_memory, set_cpu_threads
from imagenet_multilabel.data.evalset import EvalSet
from imagenet_multilabel.data.labels.sets import ResolvedLabels
from imagenet_multilabel.data.loading.settings import loader_settings
from imagenet_multilabel.models.backbones import Backbone, load_checkpoint_state
from imagenet_multilabel.models.checks import check_input_sizes, check_model
from imagenet_multilabel.runs.predictions import write_set_predictions
from imagenet_multilabel.runs.record import run_record
from imagenet_multilabel.scoring.metrics.buffer import Predictions
from imagenet_multilabel.scoring.metrics.names import flatten_metrics
from imagenet_multilabel.scoring.scorer import NonFiniteLogitsError, Scorer
from imagenet_multilabel.tasks.feature_cache import extract
from imagenet_multilabel.tasks.final_scoring import (
    compare,
    final_evaluation,
    finite_logits_or_raise,
    finite_weights_or_raise,
    print_comparison,
    with_image_sets,
)
from imagenet_multilabel.tracking.session import finish_wandb
from imagenet_multilabel.training.checks import check_train_parts, lr_warning
from imagenet_multilabel.training.fit import (
    FitPlan,
    fit_callbacks,
    fit_parts,
    module_options,
    resolve_monitor,
    training_transform,
)
from imagenet_multilabel.training.fit_sets import FitSets, build_fit_sets
from imagenet_multilabel.training.losses import Loss, build_loss
from imagenet_multilabel.training.params import check_optimizer, set_trainable
from imagenet_multilabel.training.resume import (
    check_resume,
    continue_csv_logs,
    read_resume,
    run_identity,
    start_weights,
)

log = logging.getLogger(__name__)


@dataclass
class Run:
    """A fine-tuning run built from its config, before anything runs."""

    cfg: DictConfig
    out: Path
    resume: Path | None
    kept: Any
    backbone: Backbone
    init_from: str | None
    loss: Loss
    sets: FitSets
    scorer: Scorer
    plan: FitPlan
    monitor: str | None
    callbacks: dict[str, Any]
    loggers: list
    trainer: L.Trainer
    threads: int
    cached: bool
    augmentation: dict[str, Any]


def train(cfg: DictConfig) -> dict[str, float]:
    """Fine-tune and compare; returns metrics.json's contents."""
    started = time.perf_counter()
    run = build_run(cfg)
    times: dict[str, float] = {}
    try:
        pretrained, extracted = pretrained_pass(run, times)
        try:
            best = fit(run, extracted, times)
        except Interrupted as e:
            raise resumable(e, run.out) from None
        t0 = time.perf_counter()
        run.backbone.model.load_state_dict(load_checkpoint_state(best))
        run.backbone.model.eval()
        finetuned = final_evaluation(
            cfg,
            run.trainer,
            run.backbone,
            run.scorer,
            run.sets,
            extracted,
            run.plan.loader,
            run.plan.common,
        )
        finite_logits_or_raise({n: preds for n, (_, preds) in finetuned.items()}, best)
        times["final_seconds"] = time.perf_counter() - t0
    finally:
        if run.trainer.is_global_zero:
            finish_wandb(run.loggers)
    per_set = compare(run.scorer, run.sets, pretrained, finetuned)
    metrics = flatten_metrics(per_set)
    if not run.trainer.is_global_zero:
        return metrics
    metrics = flatten_metrics(with_image_sets(per_set, run.sets, finetuned))
    times["wall_seconds"] = time.perf_counter() - started
    write_results(run, pretrained, finetuned, best, metrics, times)
    print_comparison(per_set, cfg, run.trainer.global_step)
    log.info("wrote %s", run.out / "metrics.json")
    return metrics


def resumable(e: Interrupted, out: Path) -> Interrupted:
    """An interrupted fit's line says how to resume it, where it saved a checkpoint."""
    if not (out / "checkpoints" / "last.ckpt").is_file():
        return e
    return Interrupted(
        e.signum,
        f"resume it from its last checkpoint: the same command with hydra.run.dir={out} "
        "ckpt_path=last",
    )


def build_run(cfg: DictConfig) -> Run:
    """Checks (those that need torch first, before the model is built and the data read),
    then the backbone, the sets, the scorer, the checkpoints and the trainer."""
    if (warning := lr_warning(cfg)) is not None:
        log.warning(warning)
    check_model(cfg.model)
    out = Path(cfg.paths.output_dir)
    resume = resume_path(cfg.get("ckpt_path"), out)
    raw = None if resume is None else read_resume(cfg.ckpt_path, resume)
    check_optimizer(cfg.optim)
    kept = keep_freed_memory() if cfg.get("keep_freed_memory", True) else False
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    backbone = build_backbone(cfg)
    init_from = start_weights(cfg, backbone.model)
    loss = build_loss(cfg.loss)
    eval_tf = backbone.eval_transform(normalize=not cfg.normalize_on_device)
    built = build_datasets(cfg.data, cfg.get("labels"), eval_tf)
    sets = build_fit_sets(cfg, built, eval_tf, loss.multilabel, loss.name)
    check_input_sizes(
        backbone.model,
        backbone.preprocessing,
        {"train": sets.train, **{n: s.dataset for n, s in sets.evals.items()}},
    )
    identity = run_identity(cfg, sets)
    if resume is not None:
        check_resume(cfg.ckpt_path, resume, raw, backbone.model, identity)
    resumed_step = None if resume is None else int(raw.get("global_step", 0))
    del raw  # Lightning reads the checkpoint again when the fit starts
    cached = cfg.finetune.mode == "head" and bool(cfg.finetune.cache_features)
    train_tf, augmentation = training_transform(cfg, backbone, cached)
    scorer = build_scorer(cfg.head, cfg.get("nonfinite_logits", "error"))
    names = {n: scorer.metric_names(s.valid is not None) for n, s in sets.evals.items()}
    check_train_parts(cfg, len(sets.train), list(sets.evals), names)
    validate_on = [n for n in cfg.validate_on if n in sets.evals]
    monitor = resolve_monitor(cfg.checkpoint.monitor, validate_on)
    callbacks = fit_callbacks(cfg, out, monitor)
    loggers = build_loggers(cfg)
    if resumed_step is not None:
        continue_csv_logs(loggers, resumed_step)
    trainer = build_trainer(cfg, loggers, callbacks=list(callbacks.values()))
    loader = loader_settings(cfg, trainer)  # as evaluate.py resolves them
    threads = set_cpu_threads(cfg.cpu_threads, loader.num_workers, trainer.num_devices)
    common = module_options(cfg, backbone, loader, threads)
    trainable = set_trainable(backbone.model, cfg.finetune.mode, int(cfg.finetune.last_n))
    plan = FitPlan(loss, trainable, train_tf, validate_on, loader, common, identity)
    return Run(
        cfg, out, resume, kept, backbone, init_from, loss, sets, scorer, plan, monitor,
        callbacks, loggers, trainer, threads, cached, augmentation,
    )  # fmt: skip


def pretrained_pass(
    run: Run, times: dict[str, float]
) -> tuple[dict[str, Predictions], dict[str, Any]]:
    """Pretrained logits (and pooled features) of the held-out sets, and of the training
    images when the head trains on cached features."""
    t0 = time.perf_counter()
    passes = dict(run.sets.evals)
    if run.cached:
        passes["train"] = EvalSet(run.sets.train, ResolvedLabels(run.sets.train_valid, {}))
    extracted = extract(
        run.trainer, run.backbone, run.scorer, passes, run.cfg, run.plan.loader, run.plan.common
    )
    times["extract_seconds"] = time.perf_counter() - t0
    return {n: extracted[n][1] for n in run.sets.evals}, extracted


def fit(run: Run, extracted: dict[str, Any], times: dict[str, float]) -> Path:
    """Trainer.fit (resumed from ``run.resume``); returns the checkpoint to evaluate:
    best.ckpt, or the last checkpoint when no validation ran."""
    run.plan.extracted = extracted if run.cached else None
    module, datamodule = fit_parts(run.cfg, run.backbone, run.scorer, run.sets, run.plan)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")
        # the validation metrics are gathered, the same on every rank: no sync needed
        warnings.filterwarnings("ignore", message=".*when logging on epoch level in distrib.*")
        try:
            run.trainer.fit(module, datamodule=datamodule, ckpt_path=run.resume)
        except Exception as e:
            # a validation scored the logits of weights that became NaN or inf: the line
            # names the weights (the cause) rather than the logits
            if isinstance(find_user_error(e), NonFiniteLogitsError):
                finite_weights_or_raise(run.backbone.model, f"after step {run.trainer.global_step}")
            raise
    times["fit_seconds"] = time.perf_counter() - t0
    finite_weights_or_raise(run.backbone.model, f"after step {run.trainer.global_step}")
    callbacks = run.callbacks
    best = Path(callbacks["best"].best_model_path or callbacks["last"].best_model_path or "")
    if not best.is_file():
        raise UserError("training saved no checkpoint: let it run at least one step")
    return best


def write_results(
    run: Run,
    pretrained: dict[str, Predictions],
    finetuned: dict[str, tuple[dict[str, float], Predictions]],
    best: Path,
    metrics: dict[str, float],
    times: dict[str, float],
) -> None:
    """predictions/, split.json, run.json, then metrics.json (its presence marks a complete
    run)."""
    cfg, out, sets = run.cfg, run.out, run.sets
    dtype = cfg.predictions.logits_dtype
    for name, (_, preds) in finetuned.items():
        write_set_predictions(out, name, sets.evals[name], preds, dtype)
        write_set_predictions(out, f"{name}@pretrained", sets.evals[name], pretrained[name], dtype)
    write_json(out / "split.json", sets.split.record(sets.source.dataset.files))
    write_json(out / "run.json", run_json(run, best, times))
    write_json(out / "metrics.json", metrics)  # last: its presence marks a complete run


def run_json(run: Run, best: Path, times: dict[str, float]) -> dict[str, Any]:
    cfg, trainer, callbacks = run.cfg, run.trainer, run.callbacks
    plain = lambda node: OmegaConf.to_container(node, resolve=True)  # noqa: E731
    record = run_record(
        cfg, run.backbone, run.sets.evals, run.scorer.names, trainer, run.plan.loader,
        run.threads, run.kept, run.plan.common["channels_last"],
    )  # fmt: skip
    best_score = callbacks["best"].best_model_score
    record.update(
        loss=run.loss.record(plain(cfg.loss)),
        optimizer=plain(cfg.optim),
        schedule=plain(cfg.sched),
        finetune={**run.plan.trainable.record(), "cached_features": run.cached},
        regularize=plain(cfg.regularize),
        steps={
            "global_step": trainer.global_step,
            "epochs": trainer.current_epoch,
            "max_steps": cfg.trainer.max_steps,
            "max_epochs": cfg.trainer.max_epochs,
            "train_batch_size": cfg.train_batch_size,
            "accumulate_grad_batches": cfg.trainer.accumulate_grad_batches,
            "gradient_clip_val": cfg.trainer.gradient_clip_val,
        },
        split={**run.sets.split.settings(), "file": "split.json"},
        augmentation=run.augmentation,
        training_data=run.sets.info,
        checkpoints={
            "best": str(best),
            "last": callbacks["last"].best_model_path or None,
            "monitor": run.monitor,
            "best_score": None if best_score is None else float(best_score),
            "resumed_from": None if run.resume is None else str(run.resume),
            "init_from": run.init_from,
        },
        validate_on=run.plan.validate_on,
        final_evaluation=cfg.final_eval,
        **{k: round(v, 3) for k, v in times.items()},
    )
    return record
