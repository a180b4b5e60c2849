"""Checks of where a run writes, without creating anything: a folder this user can make
or write, and the loggers' folders inside the run folder. (The run folder itself:
``runs/rundir.py``'s ``check_output_dir``.)"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig

from imagenet_multilabel.core.checks import value_at
from imagenet_multilabel.core.errors import UserError


def check_can_create(path: str | Path, setting: str) -> None:
    """``path`` is a folder, or can be made one, that this user can write (checked without
    creating anything: its nearest existing ancestor is a writable folder)."""
    path = Path(path).expanduser().absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if existing == path and not path.is_dir():
        raise UserError(f"{setting}={path} is a file: pass a folder")
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{setting}={path} cannot be written here: choose another folder")


def check_logger_dirs(cfg: DictConfig) -> None:
    """A logger's folder inside the run folder is not a file (W&B writes <run>/wandb)."""
    out = value_at(cfg, "paths.output_dir")
    loggers = cfg.get("logger") or {}
    if not out:
        return
    for name in loggers:
        sub = {"wandb": "wandb", "csv": "csv"}.get(str(name))
        if sub and (Path(str(out)) / sub).is_file():
            raise UserError(
                f"logger={name}: {Path(str(out)) / sub} is a file, but the logger writes a "
                "folder there: remove the file or choose another hydra.run.dir"
            )
