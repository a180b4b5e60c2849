"""The datasets of a fine-tuning run, from one labelled photo set: the training set and the
held-out sets on which pretrained and fine-tuned models are compared.

Photos are split first (:mod:`.splits`). With ``composites.enabled`` the training
images are composites of training photos only, and the held-out sets are composites too:
of held-out photos of trained classes (``heldout_seen``), of photos of held-out classes
(``heldout_classes``), and new combinations of training photos (``train_recombined``).
``single_photos`` is every photo of the set, alone. A photo set without a label set is
scored against its original labels (one label per photo).

``loss.soft_labels``: the training photos' targets are their label set's raters' scores
where the photos were rated (:func:`soft_targets`), their 0/1 labels elsewhere; a photo
whose soft target names a held-out class is held out as one whose label set names it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from omegaconf import DictConfig

from imagenet_multilabel.core.classes import NUM_CLASSES
from imagenet_multilabel.core.errors import UserError
from imagenet_multilabel.data.datasets.composites import CompositeDataset
from imagenet_multilabel.data.datasets.folders import ImageDataset
from imagenet_multilabel.data.evalset import EvalSet
from imagenet_multilabel.data.labels.sets import ResolvedLabels
from imagenet_multilabel.training.choices import FIT_SET_NAMES as SET_NAMES
from imagenet_multilabel.training.data import NewComposites, subset
from imagenet_multilabel.training.splits import Split, make_split


@dataclass
class FitSets:
    """``train``: the training images (eval transform; :meth:`train_with` gives them another);
    ``train_soft``: their soft targets (``loss.soft_labels``; None: the 0/1 of
    ``train_valid``); ``evals``: the held-out sets by name (those that exist for this
    split)."""

    source: EvalSet
    split: Split
    train: ImageDataset
    train_valid: torch.Tensor | None
    evals: dict[str, EvalSet]
    info: dict[str, Any] = field(default_factory=dict)
    train_soft: torch.Tensor | None = None

    @property
    def train_target(self) -> torch.Tensor | None:
        """What the loss takes of each training image: its soft target, else its valid
        labels (None: its original label)."""
        return self.train_soft if self.train_soft is not None else self.train_valid

    def train_with(self, transform: Callable | None) -> ImageDataset:
        """The same training images with ``transform`` (per tile for composites)."""
        dataset = copy.copy(self.train)
        dataset.transform = transform
        return dataset


def _one_hot(targets: list[int]) -> torch.Tensor:
    valid = torch.zeros(len(targets), NUM_CLASSES, dtype=torch.bool)
    valid[torch.arange(len(targets)), torch.tensor(targets, dtype=torch.long)] = True
    return valid


def source_set(sets: dict[str, EvalSet]) -> EvalSet:
    """The one photo set of the data config (``sets``: as :func:`..builders.build_datasets`
    built them)."""
    if len(sets) != 1:
        raise UserError(
            f"fine-tuning takes one photo set, the data config has {len(sets)} "
            f"({', '.join(sets)}): choose one with data=<option>"
        )
    source = next(iter(sets.values()))
    if isinstance(source.dataset, CompositeDataset):
        raise UserError(
            "data= is a composite set: give the photos (e.g. data=demo) and composites.enabled=true"
        )
    return source


def _labelled(dataset: ImageDataset, valid: torch.Tensor | None, info: dict) -> EvalSet:
    if valid is None:
        return EvalSet(dataset, ResolvedLabels(_one_hot(dataset.targets), {"labels": "original"}))
    return EvalSet(dataset, ResolvedLabels(valid, info))


def build_fit_sets(
    cfg: DictConfig,
    built: dict[str, EvalSet],
    transform: Callable,
    multilabel_loss: bool,
    loss_name: str,
) -> FitSets:
    """Source photos (``built``: the data config's sets, with ``transform``) -> split ->
    training images and held-out sets (``transform``: the evaluation transform, also of the
    training images; training may swap it)."""
    source = source_set(built)
    photos, valid = source.dataset, source.valid
    comp = cfg.composites
    if multilabel_loss and valid is None and not comp.enabled:
        raise UserError(
            f"loss '{loss_name}' needs label sets but dataset '{photos.name}' has none: pass "
            "labels=<set>, train on composites (composites.enabled=true), or use loss=ce"
        )
    soft = soft_targets(source) if cfg.loss.get("soft_labels", False) else None
    split = make_split(
        photos.targets,
        valid if soft is None else valid | (soft > 0),
        heldout_fraction=float(cfg.split.heldout_fraction),
        heldout_classes=int(cfg.split.heldout_classes),
        seed=int(cfg.split.seed),
    )
    label_info = dict(source.labels.info)
    parts = {
        p: subset(photos, split.part(p), p, transform)
        for p in ("train", "heldout_seen", "heldout_classes")
        if len(split.part(p))
    }
    evals: dict[str, EvalSet] = {}
    info: dict[str, Any] = {"source": source.record(), "composites": None}
    if comp.enabled:
        train, train_valid, evals, info["composites"] = _composite_sets(comp, parts, transform)
    else:
        train = parts["train"]
        train_valid = None if valid is None else valid[torch.from_numpy(split.train)]
        for name in ("heldout_seen", "heldout_classes"):
            if name in parts:
                rows = None if valid is None else valid[torch.from_numpy(split.part(name))]
                evals[name] = _labelled(parts[name], rows, label_info)
    evals["single_photos"] = _labelled(
        subset(photos, range(len(photos)), "single_photos", transform), valid, label_info
    )
    train_soft = None if soft is None else soft[torch.from_numpy(split.train)]
    if multilabel_loss and train_valid is not None:
        train, train_valid, train_soft = _without_empty_label_sets(
            train, train_valid, train_soft, transform, info
        )
    info["train_images"] = len(train)
    if train_soft is not None:
        ratings = source.labels.ratings
        rated = sum(len(ratings.rows_of(f)) > 0 for f in train.files)
        info["soft_labels"] = {"train_images_with_scores": rated}
    order = [n for n in SET_NAMES if n in evals]
    evals = {n: evals[n] for n in order}
    return FitSets(source, split, train, train_valid, evals, info, train_soft)


def soft_targets(source: EvalSet) -> torch.Tensor:
    """``(N, 1000)`` float32 targets of the source photos (``loss.soft_labels``): a rated
    photo's rated labels weighted by their raters' scores, a photo that was not rated its
    0/1 labels. Refuses a label set without raters' scores."""
    name = source.labels.info.get("labels")
    if source.valid is None or source.labels.ratings is None:
        raise UserError(
            f"loss.soft_labels needs a label set with raters' scores (labels=real); "
            f"'{name}' has none: drop loss.soft_labels or pass labels=real"
        )
    weights = torch.from_numpy(source.labels.ratings.weights(source.dataset.files))
    rated = ~weights.isnan().any(dim=1)
    return torch.where(rated[:, None], weights, source.valid.float())


def _composite_sets(
    comp: DictConfig, parts: dict[str, Any], transform: Callable
) -> tuple[CompositeDataset, torch.Tensor, dict[str, EvalSet], dict[str, int]]:
    """``composites.enabled``: the training composites, their valid labels, the held-out
    composite sets (new pairs of training photos; held-out photos where they have enough
    classes for a composite's tiles) and what the run records of them."""
    tiles = int(comp.rows) * int(comp.cols)
    grid = {"rows": int(comp.rows), "cols": int(comp.cols), "transform": transform}
    train = CompositeDataset(
        parts["train"],
        num_images=int(comp.train_images),
        seed=int(comp.seed),
        name="train",
        **grid,
    )
    n_eval, seed = int(comp.eval_images), int(comp.seed)
    recombined = NewComposites(
        parts["train"],
        train.tiles,
        num_images=n_eval,
        seed=seed + 1,
        name="train_recombined",
        **grid,
    )
    evals = {
        "train_recombined": EvalSet(
            recombined, ResolvedLabels(recombined.valid_labels, {"labels": "intrinsic"})
        )
    }
    for offset, name in ((2, "heldout_seen"), (3, "heldout_classes")):
        if name in parts and len(set(parts[name].targets)) >= tiles:
            made = CompositeDataset(
                parts[name], num_images=n_eval, seed=seed + offset, name=name, **grid
            )
            evals[name] = EvalSet(made, ResolvedLabels(made.valid_labels, {"labels": "intrinsic"}))
    record = {
        "rows": int(comp.rows),
        "cols": int(comp.cols),
        "train_images": len(train),
        "eval_images": n_eval,
        "seed": seed,
    }
    return train, train.valid_labels, evals, record


def _without_empty_label_sets(
    train: Any,
    train_valid: torch.Tensor,
    train_soft: torch.Tensor | None,
    transform: Callable,
    info: dict[str, Any],
) -> tuple[Any, torch.Tensor, torch.Tensor | None]:
    """A multi-label loss learns nothing from an image whose label set is empty (or whose
    soft target weighs nothing): such training images are left out (their count recorded
    in ``info``)."""
    keep = train_valid.any(dim=1)
    if train_soft is not None:
        keep &= (train_soft > 0).any(dim=1)
    info["train_empty_label_sets_left_out"] = int((~keep).sum())
    if bool(keep.all()):
        return train, train_valid, train_soft
    idx = torch.nonzero(keep).flatten().tolist()
    if not len(idx):
        raise UserError("every training image has an empty label set: nothing to train on")
    soft = None if train_soft is None else train_soft[keep]
    return subset(train, idx, "train", transform), train_valid[keep], soft
