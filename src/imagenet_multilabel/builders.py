"""Builders: how every task turns the composed config into objects.

One function per thing a task needs: the backbone with its preprocessing, the datasets with
their label sets, the scorer (heads), the data module, and the Trainer with its loggers and
callbacks. ``evaluate``, ``score``, ``stats`` and fine-tuning all build through here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from imagenet_multilabel.core.config import config_option, dataset_specs, instantiate_map
from imagenet_multilabel.core.errors import UserError
from imagenet_multilabel.data.datasets.folders import ImageDataset
from imagenet_multilabel.data.evalset import EvalSet
from imagenet_multilabel.data.fingerprint import dataset_fingerprint
from imagenet_multilabel.data.labels.sets import resolve_labels
from imagenet_multilabel.data.loading.cache import cache_datasets, fill_workers
from imagenet_multilabel.data.loading.module import EvalDataModule
from imagenet_multilabel.data.loading.settings import LoaderSettings
from imagenet_multilabel.data.loading.transforms import resolve_preprocessing
from imagenet_multilabel.models.backbones import Backbone, create_backbone
from imagenet_multilabel.scoring.scorer import HeadSpec, Scorer
from imagenet_multilabel.tracking.session import start_tracking


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


# --------------------------------------------------------------------------- backbone


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


def build_dataset(spec: DictConfig, transform: Callable | None, name: str | None = None):
    """Instantiate one dataset node (its ``labels`` / ``default_labels`` are not the
    dataset's arguments). The name: the node's ``name``, else ``name``, else the class's."""

    node = _plain(spec)
    for key in ("labels", "default_labels", "howto", "cache"):  # the run's, not the dataset's
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
        default = _default_labels(spec, dataset)
        resolved = resolve_labels(
            _plain(option),
            dataset.file_names,
            intrinsic=getattr(dataset, "valid_labels", None),
            default=_plain(default),
        )
        label_files = _label_files(spec, option, default)
        sets[dataset.name] = EvalSet(dataset, resolved, dataset_fingerprint(dataset, label_files))
    return sets


def _label_files(spec: DictConfig, option: Any, default: Any) -> list[str]:
    """The label files a dataset's results depend on: its own ``labels_file`` and the
    ``path`` of its label-set option, or of its default one under ``labels=auto`` (a null
    path: the copy shipped with a package, recorded by the package versions)."""
    paths = [spec.get("labels_file")]
    option = _plain(option) or {"name": "auto"}
    if isinstance(option, Mapping) and option.get("name") == "auto":
        option = _plain(default) or {}
    if isinstance(option, Mapping) and option.get("name") != "none":
        paths.append(option.get("path"))
    return [str(p) for p in paths if p not in (None, "", "???")]


def _default_labels(spec: DictConfig, dataset: ImageDataset) -> DictConfig | None:
    """The label-set option of ``labels=auto``: the one the dataset names (a class or
    instance attribute: ImageNet val -> real; ImageNetV2 -> multilabelfy for matched-frequency
    only; ImageNet-C -> its base's), as composed by Hydra into the data config, or, where the
    dataset's choice depends on its arguments, the option of that name in conf/labels."""
    wanted = getattr(dataset, "default_labels", None)
    if not wanted:
        return None
    composed = spec.get("default_labels")
    if composed is not None and composed.get("name") == wanted:
        return composed
    return config_option("labels", wanted)


def build_datamodule(
    cfg: DictConfig, settings: LoaderSettings, sets: Mapping[str, EvalSet]
) -> EvalDataModule:
    """The data module; with ``data.cache=<dir>`` its datasets read their crops from the
    decode cache, filled first where it has none (data/loading/cache.py)."""
    datasets = {name: s.dataset for name, s in sets.items()}
    cache_info = None
    cache_dir = cfg.data.get("cache") if cfg.get("data") is not None else None
    if cache_dir:
        if not cfg.normalize_on_device:
            raise UserError("data.cache keeps uint8 crops: it needs normalize_on_device=true")
        datasets, cache_info = cache_datasets(
            datasets, cache_dir, workers=fill_workers(), batch_size=settings.batch_size
        )
    return EvalDataModule(
        datasets,
        {name: s.valid for name, s in sets.items()},
        batch_size=settings.batch_size,
        num_workers=settings.num_workers,
        pin_memory=settings.pin_memory,
        prefetch_factor=settings.prefetch_factor,
        decode_cache=cache_info,
    )


# ----------------------------------------------------------------------------- heads


def build_scorer(node: DictConfig, nonfinite_logits: str = "error") -> Scorer:
    """The heads of a ``head`` node: each child a head spec, with ``if_labels`` (skipped
    where a dataset has no label set) and ``prefix`` (before its metric names);
    ``nonfinite_logits``: the run's option (refuse or score inf/NaN logits: ``Scorer``)."""
    specs = {}
    for name, head in instantiate_map(node, skip=("if_labels", "prefix")).items():
        child = node[name]
        specs[name] = HeadSpec(
            head,
            optional=bool(child.get("if_labels", False)),
            prefix=str(child.get("prefix") or ""),
        )
    return Scorer(specs, nonfinite_logits)


# ----------------------------------------------------------------------------- trainer


def build_loggers(cfg: DictConfig) -> list:
    """``cfg.logger``'s loggers, W&B's with the resolved config (tracking/session.py)."""
    loggers = list(instantiate_map(cfg.get("logger")).values())
    start_tracking(loggers, cfg)
    return loggers


def build_trainer(
    cfg: DictConfig, loggers: list | None = None, callbacks: list | None = None, **overrides: Any
) -> L.Trainer:
    """``cfg.trainer`` with the run's loggers, ``cfg.callbacks`` and a task's own
    ``callbacks`` (fine-tuning's checkpoints and early stopping)."""

    configured = list(instantiate_map(cfg.get("callbacks")).values())
    return instantiate(
        cfg.trainer,
        logger=loggers or False,
        callbacks=configured + list(callbacks or []),
        _convert_="all",
        **overrides,
    )
