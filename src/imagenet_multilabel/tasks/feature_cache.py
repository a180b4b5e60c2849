"""The pretrained pass of a fine-tuning run: pooled features and pretrained logits of every
held-out set (and of the training images, for head-only training on cached features),
computed once per process for the same model and images (jobs of a multirun share it), and
with ``feature_cache=<folder>`` stored in a file keyed by everything the pass depends on."""

from __future__ import annotations

import hashlib
import io
import json
import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from imagenet_multilabel.builders import build_datamodule
from imagenet_multilabel.core.files import atomic_write_bytes
from imagenet_multilabel.data.evalset import EvalSet
from imagenet_multilabel.data.loading.cache import dataset_identity
from imagenet_multilabel.data.loading.settings import LoaderSettings
from imagenet_multilabel.lit.features import FeatureExtraction
from imagenet_multilabel.models.backbones import Backbone
from imagenet_multilabel.scoring.metrics.buffer import Predictions
from imagenet_multilabel.scoring.scorer import Scorer

log = logging.getLogger(__name__)

_FEATURE_MEMO: dict[str, dict[str, tuple[torch.Tensor, Predictions]]] = {}


def _memo_key(
    cfg: DictConfig, backbone: Backbone, sets: dict[str, EvalSet], batch_size: int
) -> str:
    """Everything the pretrained pass depends on (jobs of a multirun share it): the model
    and its start weights, the preprocessing, and each set's images (file names, sizes and
    modification times, composites' tiles: :func:`~..data.loading.cache.dataset_identity`) and
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
