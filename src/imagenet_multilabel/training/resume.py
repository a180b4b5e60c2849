"""Resume and start weights of a fine-tuning run: ``ckpt_path`` (a checkpoint of this run:
same model, same defining settings, a length its schedule was planned for) and
``init_from`` (a new run from a checkpoint's weights)."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig, OmegaConf

from imagenet_multilabel.core.checkpoints import checkpoint_file, resume_hint
from imagenet_multilabel.core.config import dotted
from imagenet_multilabel.core.errors import ModelError, UserError
from imagenet_multilabel.data.loading.cache import dataset_identity
from imagenet_multilabel.models.backbones import (
    load_checkpoint_state,
    read_checkpoint,
    unwrap_state,
)
from imagenet_multilabel.training.fit_sets import FitSets

log = logging.getLogger(__name__)

# run_identity's entry for the run's length: stored with it, compared apart (check_length)
LENGTH = "length"


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


def read_resume(value: str, path: Path) -> Any:
    """The checkpoint ``ckpt_path=value`` names, read (a damaged one: one line naming the
    previous checkpoint kept beside it; the config check refuses most of them before torch
    is imported: ``training/checks.py``'s ``check_checkpoint_settings``)."""
    return read_checkpoint(path, damaged_hint=resume_hint(path))


def check_resume(value: str, path: Path, raw: Any, model: torch.nn.Module, identity: dict) -> None:
    """``ckpt_path``: a complete checkpoint of this model, written by a run with the same
    defining settings (:func:`run_identity`) and a length its schedule allows
    (:func:`check_length`); else one line naming what differs."""
    check_fits(unwrap_state(raw, path), model, path)
    if not isinstance(raw, dict) or raw.get("run_identity") is None:
        raise UserError(
            f"ckpt_path={value}: {path} records no run settings (not a checkpoint of "
            f"train.py's runs): start a new run from its weights with init_from={path}"
        )
    theirs = json.loads(raw["run_identity"])
    diffs = identity_differences(theirs, identity)
    if diffs:
        shown = "; ".join(diffs[:4]) + (f"; and {len(diffs) - 4} more" if len(diffs) > 4 else "")
        raise UserError(
            f"ckpt_path={value}: {path} is a checkpoint of another run ({shown}): resume "
            f"with the settings it was trained with, or start a new run from its weights "
            f"with init_from={path}"
        )
    check_length(value, path, theirs.get(LENGTH), identity.get(LENGTH), identity["sched"])


def check_length(value: str, path: Path, theirs: Any, ours: Any, sched: dict) -> None:
    """A resume that changes the run's length (``trainer.max_epochs``, ``max_steps``) is
    refused where the schedule's length follows it (a decaying schedule without
    ``sched.total_steps``: the added steps would train at the end of the old schedule, at
    a rate near 0); else it goes on with a line saying so."""
    if theirs is None or ours is None or theirs == ours:
        return
    what = ", ".join(f"trainer.{k}={theirs[k]}" for k in sorted(theirs) if theirs[k] != ours[k])
    now = ", ".join(f"trainer.{k}={ours[k]}" for k in sorted(ours) if theirs[k] != ours[k])
    if sched.get("name") not in (None, "constant") and not sched.get("total_steps"):
        raise UserError(
            f"ckpt_path={value}: {path} is of a run planned with {what} and its "
            f"{sched['name']} schedule ends there; {now} would train the added steps at the "
            f"end of that schedule: resume with {what}, or start a new run from its weights "
            f"with init_from={path}"
        )
    log.warning(
        "resuming a run planned with %s as %s (the %s schedule is unchanged)",
        what,
        now,
        sched.get("name"),
    )


def count_epoch_end_once(checkpoint: dict[str, Any], by_steps: bool) -> None:
    """A checkpoint saved at an epoch's end (``on_train_epoch_end``: the epoch counted as
    processed, not yet as completed), resumed where ``trainer.max_steps`` limits the run:
    Lightning restarts it "on the epoch's end" and runs that end again, counting the epoch
    processed a second time, so the next epoch drew the order (and augmentation) of the
    one after it. The epoch is counted once: processed as saved before that count. A run
    limited by epochs alone resumes such a checkpoint without running the end again."""
    progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress")
    if not by_steps or not progress:
        return
    total = progress["total"]
    if total["ready"] == total["started"] == total["processed"] == total["completed"] + 1:
        for counts in (total, progress["current"]):
            counts["processed"] -= 1


def identity_differences(theirs: dict, ours: dict) -> list[str]:
    """``key: <theirs> there, <ours> here`` for each defining setting that differs (the
    length apart: :func:`check_length`)."""
    a = dotted({k: v for k, v in theirs.items() if k != LENGTH})
    b = dotted({k: v for k, v in ours.items() if k != LENGTH})
    return [
        f"{k}: {a.get(k)!r} there, {b.get(k)!r} here"
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    ]


def run_identity(cfg: DictConfig, sets: FitSets) -> dict[str, Any]:
    """What defines a run, stored in its checkpoints: a checkpoint resumes only a run with
    the same (model and start weights, split, loss, optimizer, schedule, data and labels,
    composites, batches, augmentation). The length (max_epochs / max_steps, under
    :data:`LENGTH`) is compared apart: a run stopped early by trainer.max_steps resumes
    with a larger one where its schedule does not follow the length."""

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
        LENGTH: {
            "max_epochs": cfg.trainer.max_epochs,
            "max_steps": cfg.trainer.max_steps,
        },
    }


def start_weights(cfg: DictConfig, model: torch.nn.Module) -> str | None:
    """``init_from``: a new run that starts from the weights of a checkpoint (of this
    model: same parameters and shapes) instead of the pretrained ones."""
    value = cfg.get("init_from")
    if not value:
        return None
    path = checkpoint_file(value, "init_from", Path(str(value)).expanduser())
    state = load_checkpoint_state(path)
    check_fits(state, model, path)
    model.load_state_dict(state)
    log.info("weights: from %s (init_from)", path)
    return str(path)


def continue_csv_logs(loggers: list, step: int) -> None:
    """A resumed run's ``csv/metrics.csv`` continues the interrupted one's: the rows logged
    before the checkpoint's ``step`` are kept (Lightning's CSV logger starts the file
    anew; the rows from ``step`` on are logged again by the resumed run)."""
    for logger in loggers:
        if not isinstance(logger, CSVLogger):
            continue
        path = Path(logger.log_dir) / "metrics.csv"
        if not path.is_file():
            continue
        with path.open(newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("step") and float(r["step"]) < step]
        writer = logger.experiment  # creating it empties the file
        if rows:
            writer.metrics = [{k: v for k, v in r.items() if v != ""} for r in rows]
            writer.save()
