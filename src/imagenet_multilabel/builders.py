"""Builders: how every task turns the composed config into objects.

One function per thing a task needs: the backbone with its preprocessing, the datasets with
their label sets, the scorer (heads), the data module, and the Trainer with its loggers and
callbacks. ``evaluate``, ``score``, ``stats`` and fine-tuning all build through here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf
from torch import nn

from .config import instantiate_map
from .data.datasets import ImageDataset
from .data.labels import ResolvedLabels, resolve_labels
from .data.module import EvalDataModule
from .data.transforms import eval_transform, resolve_preprocessing
from .errors import UserError
from .models.backbones import create_backbone
from .scoring import HeadSpec, Scorer


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


# --------------------------------------------------------------------------- backbone


@dataclass
class Backbone:
    """A timm model in eval mode, where its weights came from, and its preprocessing as
    resolved for evaluation (recorded beside every result)."""

    model: nn.Module
    name: str
    weights: str
    preprocessing: dict[str, Any]

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def eval_transform(self, normalize: bool = True) -> Callable:
        return eval_transform(self.preprocessing, normalize=normalize)

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "weights": self.weights, "num_params": self.num_params}


def build_backbone(cfg: DictConfig) -> Backbone:
    """``cfg.model`` (name, weights, checkpoint, kwargs) and ``cfg.preprocess``."""
    model, source = create_backbone(
        cfg.model.name,
        weights=cfg.model.weights,
        checkpoint=cfg.model.get("checkpoint"),
        kwargs=_plain(cfg.model.get("kwargs")) or None,
    )
    preprocessing = resolve_preprocessing(model, _plain(cfg.get("preprocess")))
    return Backbone(model, str(cfg.model.name), source, preprocessing)


# --------------------------------------------------------------------------- datasets


@dataclass
class EvalSet:
    """A dataset with its resolved label set."""

    dataset: ImageDataset
    labels: ResolvedLabels = field(default_factory=lambda: ResolvedLabels(None, {"labels": "none"}))

    @property
    def valid(self):
        return self.labels.valid

    def record(self) -> dict[str, Any]:
        return {
            "class": type(self.dataset).__name__,
            "root": str(self.dataset.root),
            "num_images": len(self.dataset),
            **self.labels.info,
        }


def dataset_specs(data: DictConfig) -> dict[str, DictConfig]:
    """The datasets of a ``data`` node, by config key: the node itself if it has a
    ``_target_``, else each child that has one (a suite: several datasets evaluated with
    one model load)."""
    if "_target_" in data:
        return {"data": data}
    specs = {str(k): v for k, v in data.items() if isinstance(v, DictConfig) and "_target_" in v}
    if not specs:
        raise UserError("the data config names no dataset: choose one with data=<option>")
    return specs


def build_dataset(spec: DictConfig, transform: Callable | None, name: str | None = None):
    """Instantiate one dataset node (its ``labels`` / ``default_labels`` are not the
    dataset's arguments). The name: the node's ``name``, else ``name``, else the class's."""
    from hydra.utils import instantiate

    node = _plain(spec)
    for key in ("labels", "default_labels", "cache"):  # the run's, not the dataset's
        node.pop(key, None)
    node["name"] = node.get("name") or name
    return instantiate(node, transform=transform, _convert_="all")


def build_datasets(
    data: DictConfig, labels: DictConfig | None, transform: Callable | None
) -> dict[str, EvalSet]:
    """Every dataset of ``data`` with its label set (a dataset's own ``labels`` node wins
    over the run's ``labels``), by dataset name."""
    sets: dict[str, EvalSet] = {}
    for key, spec in dataset_specs(data).items():
        dataset = build_dataset(spec, transform, None if key == "data" else key)
        if dataset.name in sets:
            raise UserError(
                f"two datasets are named '{dataset.name}': give one data.<key>.name=..."
            )
        option = spec.get("labels") if "labels" in spec else labels
        default = spec.get("default_labels") if getattr(dataset, "default_labels", None) else None
        resolved = resolve_labels(
            _plain(option),
            dataset.file_names,
            intrinsic=getattr(dataset, "valid_labels", None),
            default=_plain(default),
        )
        sets[dataset.name] = EvalSet(dataset, resolved)
    return sets


def build_datamodule(cfg: DictConfig, sets: Mapping[str, EvalSet]) -> EvalDataModule:
    """The data module; with ``data.cache=<dir>`` its datasets read their crops from the
    decode cache, filled first where it has none (data/cache.py)."""
    datasets = {name: s.dataset for name, s in sets.items()}
    cache_info = None
    cache_dir = cfg.data.get("cache") if cfg.get("data") is not None else None
    if cache_dir:
        from .data.cache import cache_datasets, fill_workers

        if not cfg.normalize_on_device:
            raise UserError("data.cache keeps uint8 crops: it needs normalize_on_device=true")
        datasets, cache_info = cache_datasets(
            datasets, cache_dir, workers=fill_workers(), batch_size=cfg.batch_size
        )
    return EvalDataModule(
        datasets,
        {name: s.valid for name, s in sets.items()},
        batch_size=cfg.batch_size,
        num_workers=cfg.num_workers,
        pin_memory=bool(cfg.get("pin_memory", False)),
        prefetch_factor=cfg.get("prefetch_factor"),
        decode_cache=cache_info,
    )


# ----------------------------------------------------------------------------- heads


def build_scorer(node: DictConfig) -> Scorer:
    """The heads of a ``head`` node: each child a head spec, with ``if_labels`` (skipped
    where a dataset has no label set) and ``prefix`` (before its metric names)."""
    specs = {}
    for name, head in instantiate_map(node, skip=("if_labels", "prefix")).items():
        child = node[name]
        specs[name] = HeadSpec(
            head,
            optional=bool(child.get("if_labels", False)),
            prefix=str(child.get("prefix") or ""),
        )
    return Scorer(specs)


# ----------------------------------------------------------------------------- trainer


def build_loggers(cfg: DictConfig) -> list:
    loggers = list(instantiate_map(cfg.get("logger")).values())
    for logger in loggers:  # W&B (tracking.WandbEvalLogger): the resolved config first
        if hasattr(logger, "log_config"):
            logger.log_config(cfg)
    return loggers


def log_finished_run(loggers: list, run_dir: str | Path) -> None:
    """After a run's results are on disk: loggers that describe a finished run (W&B:
    tables and figures, tracking.py) read it from its folder; then W&B runs end."""
    for logger in loggers:
        if hasattr(logger, "log_run"):
            logger.log_run(run_dir)
    finish_wandb(loggers)


def build_trainer(cfg: DictConfig, loggers: list | None = None, **overrides: Any) -> L.Trainer:
    """``cfg.trainer`` with the run's loggers and ``cfg.callbacks``."""
    from hydra.utils import instantiate

    callbacks = list(instantiate_map(cfg.get("callbacks")).values())
    return instantiate(
        cfg.trainer, logger=loggers or False, callbacks=callbacks, _convert_="all", **overrides
    )


def finish_wandb(loggers: list, failed: bool = False) -> None:
    """Close W&B runs, with exit code 1 when the run failed (a multirun's next job must
    start a new one)."""
    from lightning.pytorch.loggers import WandbLogger

    for logger in loggers:
        if hasattr(logger, "finish"):
            logger.finish(failed=failed)
        elif isinstance(logger, WandbLogger):
            logger.experiment.finish(exit_code=1 if failed else 0)
