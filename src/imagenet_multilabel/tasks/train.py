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
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from ..builders import (
    Backbone,
    EvalSet,
    build_backbone,
    build_datamodule,
    build_loggers,
    build_scorer,
    build_trainer,
    finish_wandb,
    loader_settings,
)
from ..data.labels import ResolvedLabels
from ..data.training import FeatureDataset, FitDataModule
from ..data.transforms import Normalize
from ..errors import ModelError, UserError
from ..lit.evaluation import EvaluationModule
from ..lit.features import FeatureExtraction
from ..lit.finetune import FineTuneModule, HeadAnchor
from ..metrics.buffer import Predictions
from ..models.backbones import load_checkpoint_state
from ..outputs import atomic_write_bytes, flatten_metrics, write_json, write_predictions
from ..runtime import keep_freed_memory, set_cpu_threads
from ..scoring import Scorer
from ..summary import print_summary
from ..training.losses import build_loss
from ..training.params import set_trainable
from ..training.sets import FitSets, build_fit_sets
from .evaluate import run_record

log = logging.getLogger(__name__)

STAGES = ("pretrained", "finetuned", "delta")
MONITOR_AUTO = (
    "heldout_seen/vartopk_strict",
    "train_recombined/vartopk_strict",
    "heldout_seen/top1",
)


def train(cfg: DictConfig) -> dict[str, float]:
    """Fine-tune and compare; returns metrics.json's contents."""
    started = time.perf_counter()
    check_config(cfg)
    out = Path(cfg.paths.output_dir)
    resume = resume_path(cfg, out)
    kept = keep_freed_memory() if cfg.get("keep_freed_memory", True) else False
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    backbone = build_backbone(cfg)
    if resume is not None:
        check_fits(resume, backbone.model)
    loss = build_loss(cfg.loss)
    eval_tf = backbone.eval_transform(normalize=not cfg.normalize_on_device)
    sets = build_fit_sets(cfg, eval_tf, loss.multilabel, loss.name)
    cached = cfg.finetune.mode == "head" and bool(cfg.finetune.cache_features)
    train_tf, augmentation = training_transform(cfg, backbone, cached)
    scorer = build_scorer(cfg.head)
    validate_on = [n for n in cfg.validate_on if n in sets.evals]
    monitor = resolve_monitor(cfg.checkpoint.monitor, validate_on)
    callbacks = fit_callbacks(cfg, out, monitor)
    loggers = build_loggers(cfg)
    trainer = build_trainer(cfg, loggers, callbacks=list(callbacks.values()))
    threads = set_cpu_threads(cfg.cpu_threads, cfg.num_workers, trainer.num_devices)
    common = module_options(cfg, backbone, threads)
    write_json(out / "split.json", sets.split.record(sets.source.dataset.files))

    try:
        # 1. pretrained logits (and pooled features) of the held-out sets
        t0 = time.perf_counter()
        passes = dict(sets.evals)
        if cached:
            passes["train"] = EvalSet(sets.train, ResolvedLabels(sets.train_valid, {}))
        extracted = extract(trainer, backbone, scorer, passes, cfg, common)
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
            common,
        )
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")
            # the validation metrics are gathered, the same on every rank: no sync needed
            warnings.filterwarnings("ignore", message=".*when logging on epoch level in distrib.*")
            trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
        fit_seconds = time.perf_counter() - t0

        # 3. the best checkpoint, evaluated as evaluate.py evaluates it
        t0 = time.perf_counter()
        # best.ckpt; the last checkpoint when no validation ran
        best = Path(callbacks["best"].best_model_path or callbacks["last"].best_model_path or "")
        if not best.is_file():
            raise UserError("training saved no checkpoint: let it run at least one step")
        backbone.model.load_state_dict(load_checkpoint_state(best))
        backbone.model.eval()
        finetuned = final_evaluation(cfg, trainer, backbone, scorer, sets, extracted, common)
        final_seconds = time.perf_counter() - t0
    finally:
        if trainer.is_global_zero:
            finish_wandb(loggers)

    per_set = compare(scorer, sets, pretrained, finetuned)
    metrics = flatten_metrics(per_set)
    if not trainer.is_global_zero:
        return metrics
    for name, preds in finetuned.items():
        save_predictions(out, name, sets.evals[name], preds, cfg.predictions.logits_dtype)
        save_predictions(
            out,
            f"{name}@pretrained",
            sets.evals[name],
            pretrained[name],
            cfg.predictions.logits_dtype,
        )
    run = run_record(
        cfg, backbone, sets.evals, scorer.names, trainer, threads, cfg.cpu_parallel, kept
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
        },
        validate_on=validate_on,
        final_evaluation=cfg.final_eval,
        wall_seconds=round(time.perf_counter() - started, 3),
        extract_seconds=round(extract_seconds, 3),
        fit_seconds=round(fit_seconds, 3),
        final_seconds=round(final_seconds, 3),
    )
    write_json(out / "run.json", run)
    write_json(out / "metrics.json", metrics)  # last: its presence marks a complete run
    print_comparison(per_set, cfg, trainer.global_step)
    log.info("wrote %s", out / "metrics.json")
    return metrics


# ----------------------------------------------------------------------------- checks


def check_config(cfg: DictConfig) -> None:
    """Settings that can be refused before anything is loaded."""
    precision = str(cfg.trainer.precision)
    if precision.startswith("16") and str(cfg.trainer.accelerator) == "cpu":
        raise UserError(f"precision={precision} needs a GPU: use bf16-mixed or 32-true on CPU")
    if cfg.final_eval not in ("images", "features"):
        raise UserError(f"final_eval={cfg.final_eval!r} must be images or features")
    if cfg.final_eval == "features" and not (
        cfg.finetune.mode == "head" and cfg.finetune.cache_features
    ):
        raise UserError("final_eval=features needs finetune.mode=head with cached features")
    if cfg.cpu_parallel not in ("batches", "ops"):
        raise UserError(f"cpu_parallel must be 'batches' or 'ops', got {cfg.cpu_parallel!r}")
    if int(cfg.train_batch_size) < 1:
        raise UserError("train_batch_size must be at least 1")
    if cfg.loss.get("keep_unseen") and cfg.finetune.mode != "head":
        raise UserError(
            f"loss.keep_unseen needs finetune.mode=head (the pretrained logits of the frozen "
            f"backbone): for finetune.mode={cfg.finetune.mode} use loss=soft_ce or another loss"
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


def check_fits(path: Path, model: torch.nn.Module) -> None:
    """A checkpoint to resume must hold this model's parameters with their shapes."""
    state = load_checkpoint_state(path)
    own = model.state_dict()
    wrong = [k for k in own if k not in state or tuple(state[k].shape) != tuple(own[k].shape)]
    if wrong or len(state) != len(own):
        what = wrong[0] if wrong else next(k for k in state if k not in own)
        raise ModelError(
            f"checkpoint {path} is of another model (e.g. {what} differs): resume with the "
            "model.name and class count it was trained with"
        )


def resolve_monitor(value: str | None, validate_on: list[str]) -> str | None:
    """The metric that picks best.ckpt: ``auto`` = the first of MONITOR_AUTO validated
    (never a held-out class: that is what forgetting is measured on)."""
    if value in (None, "none", "null"):
        return None
    if value == "auto":
        return next((m for m in MONITOR_AUTO if m.split("/")[0] in validate_on), None)
    if "/" not in value or value.split("/")[0] not in validate_on:
        raise UserError(
            f"checkpoint.monitor={value!r} is not '<set>/<metric>' of a validated set "
            f"({', '.join(validate_on) or 'none'})"
        )
    return value


# ----------------------------------------------------------------------------- parts


def module_options(cfg: DictConfig, backbone: Backbone, threads: int) -> dict[str, Any]:
    p = backbone.preprocessing
    return {
        "channels_last": cfg.channels_last,
        "forward_batch_size": cfg.batch_size,
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
        "last": ModelCheckpoint(
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


def _memo_key(cfg: DictConfig, backbone: Backbone, sets: dict[str, EvalSet]) -> str:
    """Everything the pretrained pass depends on (jobs of a multirun share it)."""
    parts = {
        "model": OmegaConf.to_container(cfg.model, resolve=True),
        "weights": backbone.weights,
        "preprocessing": backbone.preprocessing,
        "options": [
            cfg.batch_size,
            cfg.channels_last,
            cfg.normalize_on_device,
            str(cfg.trainer.precision),
        ],
        "sets": {
            n: [
                str(s.dataset.root),
                s.dataset.files,
                None if s.valid is None else int(s.valid.sum()),
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
    common: dict[str, Any],
) -> dict[str, tuple[torch.Tensor, Predictions]]:
    """Pooled features and pretrained logits of every image of ``sets``, once per process
    for the same model and images."""
    key = _memo_key(cfg, backbone, sets)
    if key in _FEATURE_MEMO:
        log.info("pretrained features: reused from an earlier job of this process")
        return _FEATURE_MEMO[key]
    stored = (
        Path(cfg.feature_cache).expanduser() / f"{key}.pt" if cfg.get("feature_cache") else None
    )
    if stored is not None and stored.is_file():
        log.info("pretrained features: read from %s", stored)
        gathered = read_features(stored)
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
            datamodule=build_datamodule(cfg, loader_settings(cfg, trainer), sets),
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


def read_features(path: Path) -> dict[str, tuple[torch.Tensor, Predictions]]:
    data = torch.load(path, map_location="cpu", weights_only=True)
    return {
        name: (d["features"], Predictions(d["logits"], d["target"], d["valid"]))
        for name, d in data.items()
    }


def fit_parts(
    cfg, backbone, scorer, sets: FitSets, extracted, train_tf, validate_on, loss, trainable, common
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
        batch_size=int(cfg.batch_size),
        seed=int(cfg.seed),
        seeded_items=extracted is None,
        # cached feature rows need no decoding: workers would only add start-up and copies
        num_workers=0 if extracted is not None else cfg.num_workers,
        pin_memory=bool(cfg.get("pin_memory", False)),
        prefetch_factor=cfg.get("prefetch_factor"),
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
    cfg, trainer, backbone, scorer, sets: FitSets, extracted, common
) -> dict[str, Predictions]:
    """Fine-tuned logits of every held-out set: over the images through the evaluation
    module (what ``evaluate.py model.checkpoint=<best.ckpt>`` reproduces), or with
    ``final_eval=features`` the classifier on the cached features."""
    if cfg.final_eval == "features":
        classifier = backbone.model.get_classifier()
        with torch.no_grad():
            return {
                n: Predictions(
                    classifier(extracted[n][0]), extracted[n][1].target, extracted[n][1].valid
                )
                for n in sets.evals
            }
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
            datamodule=build_datamodule(cfg, loader_settings(cfg, trainer), sets.evals),
            verbose=False,
        )
    finally:
        module.release()
    return {name: preds for name, (_, preds) in module.results.items()}


# ----------------------------------------------------------------------------- results


def compare(scorer: Scorer, sets: FitSets, pretrained, finetuned) -> dict[str, dict[str, float]]:
    """Per set: every metric pretrained and fine-tuned, and their difference."""
    per_set: dict[str, dict[str, float]] = {}
    for name in sets.evals:
        pre = scorer.score(
            name, pretrained[name].logits, pretrained[name].target, pretrained[name].valid
        )
        ft = scorer.score(
            name, finetuned[name].logits, finetuned[name].target, finetuned[name].valid
        )
        row = {f"pretrained.{k}": v for k, v in pre.items()}
        row.update({f"finetuned.{k}": v for k, v in ft.items()})
        row.update(
            {
                f"delta.{k}": ft[k] - v
                for k, v in pre.items()
                if not k.startswith("num_") and k in ft
            }
        )
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
            title=f"{name}: {cfg.model.name} ({cfg.finetune.mode}, {cfg.loss.name}, {steps} steps)",
        )


def save_predictions(
    out: Path, name: str, evalset: EvalSet, preds: Predictions, dtype: str
) -> None:
    write_predictions(
        out / "predictions" / f"{name}.npz",
        index=torch.arange(len(preds)).numpy(),
        files=evalset.dataset.files,
        target=preds.target.numpy(),
        logits=preds.logits.detach().numpy(),
        valid=None if preds.valid is None else preds.valid.numpy(),
        logits_dtype=dtype,
    )


def _score(value: Any) -> float | None:
    return None if value is None else float(value)
