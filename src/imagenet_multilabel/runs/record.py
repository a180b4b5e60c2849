"""What a run records to be compared and reproduced (run.json): the model, datasets and
settings (:func:`run_record`, evaluate's and train's common part), versions, git commit,
host."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: reading versions imports neither torch nor timm
    import lightning as L
    from omegaconf import DictConfig

    from imagenet_multilabel.data.evalset import EvalSet
    from imagenet_multilabel.data.loading.settings import LoaderSettings
    from imagenet_multilabel.models.backbones import Backbone

PACKAGES = (
    "imagenet-multilabel",
    "torch",
    "torchvision",
    "timm",
    "lightning",
    "torchmetrics",
    "hydra-core",
    "numpy",
    "pillow",
)


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit(path: Path | None = None) -> str | None:
    """The commit of the repository holding this package, '+dirty' if it has changes."""
    cwd = path or Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("+dirty" if dirty else "")


def host_info() -> dict[str, str | int]:

    import torch  # torch: runs/ is read by reports that never load it

    info: dict[str, str | int] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count() or 0,
        "torch_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def run_record(
    cfg: DictConfig,
    backbone: Backbone,
    sets: dict[str, EvalSet],
    heads: list[str],
    trainer: L.Trainer,
    loader: LoaderSettings,
    threads: int,
    kept: bool,
    channels_last: bool,
) -> dict[str, Any]:
    """What run.json records of every run (evaluate's and train's): enough to compare and
    reproduce it; each task adds its own (sizes and times, training settings).
    ``channels_last``: the memory format the forward pass used (``channels_last=true``
    falls back to contiguous for a model that cannot take it: lit/evaluation.py)."""
    on_cpu = trainer.strategy.root_device.type == "cpu"
    return {
        "task": str(cfg.get("task_name", "evaluate")),
        "model": backbone.record(),
        "preprocessing": backbone.preprocessing,
        "datasets": {name: s.record() for name, s in sets.items()},
        "heads": heads,
        "seed": cfg.seed,
        "channels_last": channels_last,
        "cpu_threads": threads,
        "cpu_parallel": cfg.get("cpu_parallel", "batches") if on_cpu else None,
        "normalize_on_device": cfg.normalize_on_device,
        "keep_freed_memory": kept,
        "compile": cfg.compile,
        "trainer": {
            "accelerator": str(cfg.trainer.accelerator),
            "devices": trainer.num_devices,
            "num_nodes": trainer.num_nodes,
            "world_size": trainer.world_size,
            "precision": str(cfg.trainer.precision),
        },
        "versions": package_versions(),
        "git_commit": git_commit(),
        "host": host_info(),
        "batch_size": loader.batch_size,
        "num_workers": loader.num_workers,
        "pin_memory": loader.pin_memory,
    }
