"""train: fine-tune a pretrained backbone with a multi-label loss, and compare it with the
pretrained one on held-out images of trained classes, on classes held out of training
(forgetting) and on single photos of every class, with the heads evaluate reports.

config -> builders (backbone, photos, split, scorer, trainer) -> one pass over the held-out
sets (pretrained logits; pooled features too, the inputs of head-only training) ->
Trainer.fit (validation through the evaluation path) -> the best checkpoint evaluated as
evaluate.py would -> predictions/, split.json, run.json, metrics.json (last).

metrics.json keys: ``<set>/pretrained.<metric>``, ``<set>/finetuned.<metric>`` and
``<set>/delta.<metric>`` (fine-tuned minus pretrained).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from imagenet_multilabel.builders import (
    build_backbone,
    build_datamodule,
    build_datasets,
    build_loggers,
    build_scorer,
    build_trainer,
)
from imagenet_multilabel.core.config import dotted
from imagenet_multilabel.core.errors import ModelError, UserError
from imagenet_multilabel.core.files import atomic_write_bytes, write_json
from imagenet_multilabel.core.runtime import keep_freed_memory, set_cpu_threads
from imagenet_multilabel.data.evalset import EvalSet
from imagenet_multilabel.data.labels.sets import ResolvedLabels
from imagenet_multilabel.data.loading.cache import dataset_identity
from imagenet_multilabel.data.loading.settings import LoaderSettings, loader_settings
from imagenet_multilabel.data.loading.transforms import Normalize
from imagenet_multilabel.lit.evaluation import EvaluationModule
from imagenet_multilabel.lit.features import FeatureExtraction
from imagenet_multilabel.lit.finetune import FineTuneModule, HeadAnchor
from imagenet_multilabel.models.backbones import (
    Backbone,
    load_checkpoint_state,
    read_checkpoint,
    unwrap_state,
)
from imagenet_multilabel.models.checks import check_input_sizes, check_model
from imagenet_multilabel.runs.predictions import write_set_predictions
from imagenet_multilabel.runs.record import run_record
from imagenet_multilabel.runs.summary import print_summary
from imagenet_multilabel.scoring.metrics.buffer import Predictions
from imagenet_multilabel.scoring.metrics.names import (
    flatten_metrics,
    is_count,
    is_metric_key,
    split_metric_key,
)
from imagenet_multilabel.scoring.scorer import Scorer
from imagenet_multilabel.tracking.session import finish_wandb
from imagenet_multilabel.training.checks import check_train_parts, lr_warning
from imagenet_multilabel.training.choices import FIT_SET_MEASURES, FIT_STAGES
from imagenet_multilabel.training.data import FeatureDataset, FitDataModule
from imagenet_multilabel.training.fit_sets import FitSets, build_fit_sets
from imagenet_multilabel.training.losses import build_loss
from imagenet_multilabel.training.params import set_trainable

log = logging.getLogger(__name__)

STAGES = FIT_STAGES
MONITOR_AUTO = (
    "heldout_seen/vartopk_strict",
    "train_recombined/vartopk_strict",
    "heldout_seen/top1",
)


def train(cfg: DictConfig) -> dict[str, float]:
    """Fine-tune and compare; returns metrics.json's contents."""
    started = time.perf_counter()
    if (warning := lr_warning(cfg)) is not None:
        log.warning(warning)
    check_model(cfg.model)
    out = Path(cfg.paths.output_dir)
    resume = resume_path(cfg, out)
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
        check_resume(cfg.ckpt_path, resume, backbone.model, identity)
    cached = cfg.finetune.mode == "head" and bool(cfg.finetune.cache_features)
    train_tf, augmentation = training_transform(cfg, backbone, cached)
    scorer = build_scorer(cfg.head, cfg.get("nonfinite_logits", "error"))
    names = {n: scorer.metric_names(s.valid is not None) for n, s in sets.evals.items()}
    check_train_parts(cfg, len(sets.train), list(sets.evals), names)
    validate_on = [n for n in cfg.validate_on if n in sets.evals]
    monitor = resolve_monitor(cfg.checkpoint.monitor, validate_on)
    callbacks = fit_callbacks(cfg, out, monitor)
    loggers = build_loggers(cfg)
    trainer = build_trainer(cfg, loggers, callbacks=list(callbacks.values()))
    loader = loader_settings(cfg, trainer)  # as evaluate.py resolves them
    threads = set_cpu_threads(cfg.cpu_threads, loader.num_workers, trainer.num_devices)
    common = module_options(cfg, backbone, loader, threads)

    try:
        # 1. pretrained logits (and pooled features) of the held-out sets
        t0 = time.perf_counter()
        passes = dict(sets.evals)
        if cached:
            passes["train"] = EvalSet(sets.train, ResolvedLabels(sets.train_valid, {}))
        extracted = extract(trainer, backbone, scorer, passes, cfg, loader, common)
        pretrained = {n: extracted[n][1] for n in sets.evals}
        extract_seconds = time.perf_counter() - t0

        # 2. fit
        trainable = set_trainable(backbone.model, cfg.finetune.mode, int(cfg.finetune.last_n))
        module, datamodule = fit_parts(
            cfg,
            backbone,
            scorer,
            sets,
            extracted if cached else None,
            train_tf,
            validate_on,
            loss,
            trainable,
            loader,
            common,
            identity,
        )
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")
            # the validation metrics are gathered, the same on every rank: no sync needed
            warnings.filterwarnings("ignore", message=".*when logging on epoch level in distrib.*")
            trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
        fit_seconds = time.perf_counter() - t0
        finite_weights_or_raise(backbone.model, f"after step {trainer.global_step}")

        # 3. the best checkpoint, evaluated as evaluate.py evaluates it
        t0 = time.perf_counter()
        # best.ckpt; the last checkpoint when no validation ran
        best = Path(callbacks["best"].best_model_path or callbacks["last"].best_model_path or "")
        if not best.is_file():
            raise UserError("training saved no checkpoint: let it run at least one step")
        backbone.model.load_state_dict(load_checkpoint_state(best))
        backbone.model.eval()
        finetuned = final_evaluation(
            cfg, trainer, backbone, scorer, sets, extracted, loader, common
        )
        finite_logits_or_raise({n: preds for n, (_, preds) in finetuned.items()}, best)
        final_seconds = time.perf_counter() - t0
    finally:
        if trainer.is_global_zero:
            finish_wandb(loggers)

    per_set = compare(scorer, sets, pretrained, finetuned)
    metrics = flatten_metrics(per_set)
    if not trainer.is_global_zero:
        return metrics
    dtype = cfg.predictions.logits_dtype
    for name, (_, preds) in finetuned.items():
        write_set_predictions(out, name, sets.evals[name], preds, dtype)
        write_set_predictions(out, f"{name}@pretrained", sets.evals[name], pretrained[name], dtype)
    run = run_record(
        cfg, backbone, sets.evals, scorer.names, trainer, loader, threads, cfg.cpu_parallel, kept
    )
    run.update(
        loss=loss.record(OmegaConf.to_container(cfg.loss, resolve=True)),
        optimizer=OmegaConf.to_container(cfg.optim, resolve=True),
        schedule=OmegaConf.to_container(cfg.sched, resolve=True),
        finetune={**trainable.record(), "cached_features": cached},
        regularize=OmegaConf.to_container(cfg.regularize, resolve=True),
        steps={
            "global_step": trainer.global_step,
            "epochs": trainer.current_epoch,
            "max_steps": cfg.trainer.max_steps,
            "max_epochs": cfg.trainer.max_epochs,
            "train_batch_size": cfg.train_batch_size,
            "accumulate_grad_batches": cfg.trainer.accumulate_grad_batches,
            "gradient_clip_val": cfg.trainer.gradient_clip_val,
        },
        split={**sets.split.settings(), "file": "split.json"},
        augmentation=augmentation,
        training_data=sets.info,
        checkpoints={
            "best": str(best),
            "last": callbacks["last"].best_model_path or None,
            "monitor": monitor,
            "best_score": _score(callbacks["best"].best_model_score),
            "resumed_from": None if resume is None else str(resume),
            "init_from": init_from,
        },
        validate_on=validate_on,
        final_evaluation=cfg.final_eval,
        wall_seconds=round(time.perf_counter() - started, 3),
        extract_seconds=round(extract_seconds, 3),
        fit_seconds=round(fit_seconds, 3),
        final_seconds=round(final_seconds, 3),
    )
    write_json(out / "split.json", sets.split.record(sets.source.dataset.files))
    write_json(out / "run.json", run)
    write_json(out / "metrics.json", metrics)  # last: its presence marks a complete run
    print_comparison(per_set, cfg, trainer.global_step)
    log.info("wrote %s", out / "metrics.json")
    return metrics


# ----------------------------------------------------------------------------- checks


def finite_weights_or_raise(model: torch.nn.Module, when: str) -> None:
    """Weights that became NaN or infinite (a step too large) end the run before anything
    is evaluated or written."""
    for name, p in model.state_dict().items():
        if p.is_floating_point() and not bool(torch.isfinite(p).all()):
            raise UserError(
                f"the weights are not finite {when} ({name} holds NaN or inf): nothing was "
                "written; lower optim.lr or set trainer.gradient_clip_val=1.0"
            )


def finite_logits_or_raise(preds: dict[str, Predictions], source: Path) -> None:
    for name, p in preds.items():
        if not bool(torch.isfinite(p.logits).all()):
            raise UserError(
                f"the fine-tuned logits of {name} are not finite (weights of {source}): "
                "nothing was written; lower optim.lr or set trainer.gradient_clip_val=1.0"
            )


def resume_path(cfg: DictConfig, out: Path) -> Path | None:
    """``ckpt_path``: null (start), ``last`` (this run folder's checkpoints/last.ckpt) or
    a file."""
    value = cfg.get("ckpt_path")
    if value in (None, "", "null"):
        return None
    path = out / "checkpoints" / "last.ckpt" if value == "last" else Path(str(value)).expanduser()
    if not path.is_file():
        hint = " (pass hydra.run.dir=<the run to resume>)" if value == "last" else ""
        raise UserError(f"ckpt_path={value}: {path} does not exist{hint}")
    return path


def check_fits(state: dict[str, torch.Tensor], model: torch.nn.Module, path: Path) -> None:
    """A checkpoint to resume or start from holds this model's parameters with their shapes."""
    own = model.state_dict()
    wrong = [k for k in own if k not in state or tuple(state[k].shape) != tuple(own[k].shape)]
    if wrong or len(state) != len(own):
        what = wrong[0] if wrong else next(k for k in state if k not in own)
        raise ModelError(
            f"checkpoint {path} is of another model (e.g. {what} differs): use the "
            "model.name and class count it was trained with"
        )


def previous_checkpoint(path: Path) -> Path:
    """Where the checkpoint saved before ``path`` is kept (:class:`KeepPrevious`)."""
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def check_resume(value: str, path: Path, model: torch.nn.Module, identity: dict) -> None:
    """``ckpt_path``: a complete checkpoint of this model, written by a run with the same
    defining settings (:func:`run_identity`); else one line naming what differs."""
    prev = previous_checkpoint(path)
    hint = (
        f"resume from the previous one, kept for this: ckpt_path={prev}"
        if prev.is_file()
        else "start the run again without ckpt_path"
    )
    raw = read_checkpoint(path, damaged_hint=hint)
    check_fits(unwrap_state(raw, path), model, path)
    theirs = raw.get("run_identity") if isinstance(raw, dict) else None
    if theirs is None:
        raise UserError(
            f"ckpt_path={value}: {path} records no run settings (not a checkpoint of "
            f"train.py's runs): start a new run from its weights with init_from={path}"
        )
    diffs = identity_differences(json.loads(theirs), identity)
    if diffs:
        shown = "; ".join(diffs[:4]) + (f"; and {len(diffs) - 4} more" if len(diffs) > 4 else "")
        raise UserError(
            f"ckpt_path={value}: {path} is a checkpoint of another run ({shown}): resume "
            f"with the settings it was trained with, or start a new run from its weights "
            f"with init_from={path}"
        )


def identity_differences(theirs: dict, ours: dict) -> list[str]:
    """``key: <theirs> there, <ours> here`` for each defining setting that differs."""
    a, b = dotted(theirs), dotted(ours)
    return [
        f"{k}: {a.get(k)!r} there, {b.get(k)!r} here"
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    ]


def run_identity(cfg: DictConfig, sets: FitSets) -> dict[str, Any]:
    """What defines a run, stored in its checkpoints: a checkpoint resumes only a run with
    the same (model and start weights, split, loss, optimizer, schedule, data and labels,
    composites, batches, augmentation). The length (max_epochs / max_steps) is not part of
    it: a run stopped early by trainer.max_steps resumes with a larger one."""

    def plain(node: Any) -> Any:
        return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node

    data = dataset_identity(sets.source.dataset)
    valid = sets.source.valid
    return {
        "model": plain(cfg.model),
        "init_from": cfg.get("init_from"),
        "preprocess": plain(cfg.preprocess),
        "seed": cfg.seed,
        "split": plain(cfg.split),
        "loss": plain(cfg.loss),
        "optim": plain(cfg.optim),
        "sched": plain(cfg.sched),
        "finetune": plain(cfg.finetune),
        "regularize": plain(cfg.regularize),
        "augment": plain(cfg.augment),
        "composites": plain(cfg.composites),
        "train_batch_size": cfg.train_batch_size,
        "drop_last": cfg.drop_last,
        "accumulate_grad_batches": cfg.trainer.accumulate_grad_batches,
        "data": {
            "config": plain(cfg.data),
            "files": hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16],
            "labels": None
            if valid is None
            else hashlib.sha256(valid.numpy().tobytes()).hexdigest()[:16],
        },
    }


def start_weights(cfg: DictConfig, model: torch.nn.Module) -> str | None:
    """``init_from``: a new run that starts from the weights of a checkpoint (of this
    model: same parameters and shapes) instead of the pretrained ones."""
    value = cfg.get("init_from")
    if not value:
        return None
    path = Path(str(value)).expanduser()
    if not path.is_file():
        raise UserError(f"init_from={value}: {path} does not exist")
    state = load_checkpoint_state(path)
    check_fits(state, model, path)
    model.load_state_dict(state)
    log.info("weights: from %s (init_from)", path)
    return str(path)


def resolve_monitor(value: str | None, validate_on: list[str]) -> str | None:
    """The metric that picks best.ckpt: ``auto`` = the first of MONITOR_AUTO validated
    (never a held-out class: that is what forgetting is measured on)."""
    if value in (None, "none", "null"):
        return None
    if value == "auto":
        return next((m for m in MONITOR_AUTO if split_metric_key(m)[0] in validate_on), None)
    if not is_metric_key(value) or split_metric_key(value)[0] not in validate_on:
        raise UserError(
            f"checkpoint.monitor={value!r} is not '<set>/<metric>' of a validated set "
            f"({', '.join(validate_on) or 'none'})"
        )
    return value


# ----------------------------------------------------------------------------- parts


def module_options(
    cfg: DictConfig, backbone: Backbone, loader: LoaderSettings, threads: int
) -> dict[str, Any]:
    p = backbone.preprocessing
    return {
        "channels_last": cfg.channels_last,
        "forward_batch_size": loader.batch_size,
        "normalize": Normalize(p["mean"], p["std"]) if cfg.normalize_on_device else None,
        "parallel_batches": threads if cfg.cpu_parallel == "batches" else 1,
    }


def training_transform(cfg: DictConfig, backbone: Backbone, cached: bool):
    """timm's training transform (``augment.*``), or the eval transform when images are not
    augmented (cached features: each image passes the backbone once)."""
    eval_tf = backbone.eval_transform(normalize=not cfg.normalize_on_device)
    if cached:
        return eval_tf, {"applied": False, "reason": "head-only training on cached features"}
    options = OmegaConf.to_container(cfg.augment, resolve=True)
    if not options.pop("enabled"):
        return eval_tf, {"applied": False, "reason": "augment.enabled=false"}
    from timm.data import create_transform

    p = backbone.preprocessing
    transform = create_transform(
        input_size=p["input_size"],
        is_training=True,
        mean=p["mean"],
        std=p["std"],
        normalize=not cfg.normalize_on_device,
        **options,
    )
    return transform, {"applied": True, **options, "transform": repr(transform)}


def fit_callbacks(cfg: DictConfig, out: Path, monitor: str | None) -> dict[str, Any]:
    from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint

    class KeepPrevious(ModelCheckpoint):
        """last.ckpt, the one before it kept as last.prev.ckpt (a hard link: no copy; the
        new file replaces the name atomically), so that a damaged last.ckpt can be given up
        for the previous one."""

        def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
            if trainer.is_global_zero and os.path.isfile(filepath):
                prev = previous_checkpoint(Path(filepath))
                tmp = prev.with_name(prev.name + ".tmp")
                tmp.unlink(missing_ok=True)
                try:
                    os.link(filepath, tmp)
                except OSError:
                    shutil.copy2(filepath, tmp)
                os.replace(tmp, prev)
            super()._save_checkpoint(trainer, filepath)

    node = cfg.checkpoint
    dirpath = out / "checkpoints"
    callbacks: dict[str, Any] = {
        "best": ModelCheckpoint(
            dirpath=dirpath,
            filename="best",
            monitor=monitor,
            mode=node.mode,
            save_top_k=1,
            auto_insert_metric_name=False,
            enable_version_counter=False,
            save_on_train_epoch_end=False if monitor else None,
        ),
        "last": KeepPrevious(
            dirpath=dirpath,
            filename="last",
            save_top_k=1,
            every_n_train_steps=node.every_n_steps,
            enable_version_counter=False,
        ),
    }
    if cfg.early_stopping.enabled:
        if monitor is None:
            raise UserError("early_stopping needs a metric: set checkpoint.monitor=<set>/<metric>")
        callbacks["early_stopping"] = EarlyStopping(
            monitor=monitor,
            mode=node.mode,
            patience=int(cfg.early_stopping.patience),
            min_delta=float(cfg.early_stopping.min_delta),
        )
    if cfg.get("logger"):
        callbacks["lr"] = LearningRateMonitor(logging_interval="step")
    return callbacks


_FEATURE_MEMO: dict[str, dict[str, tuple[torch.Tensor, Predictions]]] = {}


def _memo_key(
    cfg: DictConfig, backbone: Backbone, sets: dict[str, EvalSet], batch_size: int
) -> str:
    """Everything the pretrained pass depends on (jobs of a multirun share it): the model
    and its start weights, the preprocessing, and each set's images (file names, sizes and
    modification times, composites' tiles: :func:`~..data.cache.dataset_identity`) and
    labels (their content)."""
    parts = {
        "model": OmegaConf.to_container(cfg.model, resolve=True),
        "weights": backbone.weights,
        "init_from": cfg.get("init_from"),
        "preprocessing": backbone.preprocessing,
        "options": [
            batch_size,
            cfg.channels_last,
            cfg.normalize_on_device,
            str(cfg.trainer.precision),
        ],
        "sets": {
            n: [
                dataset_identity(s.dataset),
                None if s.valid is None else hashlib.sha256(s.valid.numpy().tobytes()).hexdigest(),
            ]
            for n, s in sets.items()
        },
    }
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def extract(
    trainer: L.Trainer,
    backbone: Backbone,
    scorer: Scorer,
    sets: dict[str, EvalSet],
    cfg: DictConfig,
    loader: LoaderSettings,
    common: dict[str, Any],
) -> dict[str, tuple[torch.Tensor, Predictions]]:
    """Pooled features and pretrained logits of every image of ``sets``, once per process
    for the same model and images."""
    key = _memo_key(cfg, backbone, sets, loader.batch_size)
    if key in _FEATURE_MEMO:
        log.info("pretrained features: reused from an earlier job of this process")
        return _FEATURE_MEMO[key]
    stored = (
        Path(cfg.feature_cache).expanduser() / f"{key}.pt" if cfg.get("feature_cache") else None
    )
    if stored is not None and stored.is_file():
        gathered = read_features(stored, {n: len(s.dataset) for n, s in sets.items()})
        if gathered is not None:
            log.info("pretrained features: read from %s", stored)
            _FEATURE_MEMO.clear()
            _FEATURE_MEMO[key] = gathered
            return gathered
    module = FeatureExtraction(
        backbone.model,
        scorer,
        {name: len(s.dataset) for name, s in sets.items()},
        with_valid={name for name, s in sets.items() if s.valid is not None},
        **common,
    )
    try:
        trainer.validate(
            module,
            datamodule=build_datamodule(cfg, loader, sets),
            verbose=False,
        )
    finally:
        module.release()
    _FEATURE_MEMO.clear()
    _FEATURE_MEMO[key] = module.gathered
    if stored is not None and trainer.is_global_zero:
        write_features(stored, module.gathered)
    return module.gathered


def write_features(path: Path, gathered: dict[str, tuple[torch.Tensor, Predictions]]) -> None:
    """Features and pretrained predictions as plain tensors (read with weights_only)."""
    import io

    buffer = io.BytesIO()
    torch.save(
        {
            name: {"features": f, "logits": p.logits, "target": p.target, "valid": p.valid}
            for name, (f, p) in gathered.items()
        },
        buffer,
    )
    atomic_write_bytes(path, buffer.getvalue())


def read_features(
    path: Path, sizes: dict[str, int]
) -> dict[str, tuple[torch.Tensor, Predictions]] | None:
    """The cached pass of sets of ``sizes`` (name -> images), or None (with a warning line)
    when the file is damaged: cut short, not a cache file, or of other sets."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        gathered = {
            name: (d["features"], Predictions(d["logits"], d["target"], d["valid"]))
            for name, d in data.items()
        }
        if {n: len(p.logits) for n, (_, p) in gathered.items()} != sizes:
            raise ValueError("its sets differ from this run's")
        if any(len(f) != len(p.logits) for f, p in gathered.values()):
            raise ValueError("features and logits differ in length")
    except Exception as e:
        reason = str(e).strip().splitlines()[0][:100] if str(e).strip() else type(e).__name__
        log.warning("pretrained features: %s is damaged (%s): computing them again", path, reason)
        return None
    return gathered


def fit_parts(
    cfg,
    backbone,
    scorer,
    sets: FitSets,
    extracted,
    train_tf,
    validate_on,
    loss,
    trainable,
    loader: LoaderSettings,
    common,
    identity=None,
):
    """The fitting module and its data: images, or cached features (``extracted``)."""
    if extracted is not None:
        features, train_preds = extracted["train"]
        train = FeatureDataset(features, train_preds.target)
        val = {n: FeatureDataset(extracted[n][0], extracted[n][1].target) for n in validate_on}
    else:
        train = sets.train_with(train_tf)
        val = {n: sets.evals[n].dataset for n in validate_on}
    anchor = head_anchor(cfg, backbone.model, sets)
    module = FineTuneModule(
        backbone.model,
        scorer,
        {n: len(d) for n, d in val.items()},
        with_valid={n for n in validate_on if sets.evals[n].valid is not None},
        loss=loss,
        trainable=trainable,
        optim=OmegaConf.to_container(cfg.optim, resolve=True),
        sched=OmegaConf.to_container(cfg.sched, resolve=True),
        seed=int(cfg.seed),
        anchor=anchor,
        run_identity=identity,
        **{
            **common,
            "parallel_batches": 1 if extracted is not None else common["parallel_batches"],
        },
    )
    datamodule = FitDataModule(
        train,
        sets.train_valid,
        val,
        {n: sets.evals[n].valid for n in validate_on},
        train_batch_size=int(cfg.train_batch_size),
        batch_size=loader.batch_size,
        seed=int(cfg.seed),
        seeded_items=extracted is None,
        # cached feature rows need no decoding: workers would only add start-up and copies
        num_workers=0 if extracted is not None else loader.num_workers,
        pin_memory=loader.pin_memory,
        prefetch_factor=loader.prefetch_factor,
        drop_last=bool(cfg.get("drop_last", False)),
    )
    return module, datamodule


def head_anchor(cfg: DictConfig, model: torch.nn.Module, sets: FitSets) -> HeadAnchor | None:
    """``regularize.l2_to_pretrained``, ``regularize.train_rows`` (all | seen: only the
    classifier rows of classes with a positive label in training are trained) and
    ``loss.keep_unseen`` (the pretrained logits, for the soft targets of unseen classes)."""
    reg = cfg.regularize
    if reg.train_rows not in ("all", "seen"):
        raise UserError(f"regularize.train_rows={reg.train_rows!r} must be all or seen")
    keep = bool(cfg.loss.get("keep_unseen", 0.0))
    if not reg.l2_to_pretrained and reg.train_rows == "all" and not keep:
        return None
    classifier = model.get_classifier()
    if not isinstance(classifier, torch.nn.Linear):
        raise UserError("regularize.* and loss.keep_unseen need a linear classifier")
    seen = seen_classes(sets, classifier.out_features)
    return HeadAnchor(
        classifier,
        float(reg.l2_to_pretrained),
        rows=seen if reg.train_rows == "seen" else None,
        unseen=~seen if keep else None,
    )


def seen_classes(sets: FitSets, num_classes: int) -> torch.Tensor:
    """(C,) bool: the classes with a positive label in training (valid labels, else the
    original labels)."""
    if sets.train_valid is not None:
        return sets.train_valid.any(dim=0)
    rows = torch.zeros(num_classes, dtype=torch.bool)
    rows[torch.tensor(sets.train.targets)] = True
    return rows


def final_evaluation(
    cfg, trainer, backbone, scorer, sets: FitSets, extracted, loader: LoaderSettings, common
) -> dict[str, tuple[dict[str, float], Predictions]]:
    """Fine-tuned metrics and logits of every held-out set, scored once: over the images
    through the evaluation module, which scores them as evaluate.py does (what
    ``evaluate.py model.checkpoint=<best.ckpt>`` reproduces), or with
    ``final_eval=features`` the classifier on the cached features."""
    if cfg.final_eval == "features":
        classifier = backbone.model.get_classifier()
        results = {}
        for n in sets.evals:
            features, pre = extracted[n]
            with torch.no_grad():
                preds = Predictions(classifier(features), pre.target, pre.valid)
            results[n] = (scorer.score(n, preds.logits, preds.target, preds.valid), preds)
        return results
    module = EvaluationModule(
        backbone.model,
        scorer,
        {name: len(s.dataset) for name, s in sets.evals.items()},
        with_valid={name for name, s in sets.evals.items() if s.valid is not None},
        **common,
    )
    try:
        trainer.validate(
            module,
            datamodule=build_datamodule(cfg, loader, sets.evals),
            verbose=False,
        )
    finally:
        module.release()
    return dict(module.results)


# ----------------------------------------------------------------------------- results


def compare(
    scorer: Scorer,
    sets: FitSets,
    pretrained: dict[str, Predictions],
    finetuned: dict[str, tuple[dict[str, float], Predictions]],
) -> dict[str, dict[str, float]]:
    """Per set: every metric pretrained (scored here) and fine-tuned (as
    :func:`final_evaluation` scored them), and their difference."""
    per_set: dict[str, dict[str, float]] = {}
    for name in sets.evals:
        pre = scorer.score(
            name, pretrained[name].logits, pretrained[name].target, pretrained[name].valid
        )
        ft = finetuned[name][0]
        row = {f"pretrained.{k}": v for k, v in pre.items()}
        row.update({f"finetuned.{k}": v for k, v in ft.items()})
        row.update({f"delta.{k}": ft[k] - v for k, v in pre.items() if not is_count(k) and k in ft})
        per_set[name] = row
    return per_set


def split_stages(metrics: dict[str, float]) -> dict[str, dict[str, float]]:
    """``{"pretrained.top1": ...}`` -> ``{"pretrained": {"top1": ...}, ...}``."""
    out: dict[str, dict[str, float]] = {s: {} for s in STAGES}
    for key, value in metrics.items():
        stage, _, metric = key.partition(".")
        out[stage][metric] = value
    return out


def print_comparison(per_set: dict[str, dict[str, float]], cfg: DictConfig, steps: int) -> None:
    for name, metrics in per_set.items():
        stages = split_stages(metrics)
        print_summary(
            {
                "pretrained": stages["pretrained"],
                "fine-tuned": stages["finetuned"],
                "Δ": stages["delta"],
            },
            title=f"{name} ({FIT_SET_MEASURES.get(name, name)}): {cfg.model.name} "
            f"({cfg.finetune.mode}, {cfg.loss.name}, {steps} steps)",
        )


def _score(value: Any) -> float | None:
    return None if value is None else float(value)
