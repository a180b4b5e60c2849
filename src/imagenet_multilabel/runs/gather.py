"""Find the jobs of a sweep (or any run folders) and read each: finished (through
:class:`~imagenet_multilabel.runs.rundir.RunDir`), failed (``failed.json``) or incomplete
(started, neither: killed or still running)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from imagenet_multilabel.core.config import dataset_names
from imagenet_multilabel.core.errors import DataError, UserError
from imagenet_multilabel.core.files import read_json
from imagenet_multilabel.runs.rundir import FAILED_FILE, JOB_FILE, METRICS_FILE, RunDir

MARKERS = (METRICS_FILE, FAILED_FILE, JOB_FILE, ".hydra/config.yaml")
NOT_RUNS = {"predictions", "csv", "wandb", "figures", "lightning_logs"}
MAX_DEPTH = 4


@dataclass
class Job:
    """One run folder: ``status`` is ``done``, ``failed``, ``incomplete`` or ``skipped``
    (a finished run of another task, or unreadable: ``note`` says why)."""

    path: Path
    status: str
    run: RunDir | None = None
    failure: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    record: dict[str, Any] | None = None  # job.json of a sweep job
    note: str | None = None

    @property
    def model(self) -> str:
        if self.run is not None:
            return str((self.run.info.get("model") or {}).get("name") or "?")
        if self.failure is not None:
            return str((self.failure.get("model") or {}).get("name") or "?")
        return str(((self.config or {}).get("model") or {}).get("name") or "?")

    @property
    def datasets(self) -> list[str]:
        if self.run is not None:
            return self.run.datasets
        if self.failure is not None:
            return list(self.failure.get("datasets") or [])
        if self.config and self.config.get("data"):
            return dataset_names(OmegaConf.create({"data": self.config["data"]}))
        return []


def is_run_dir(path: Path) -> bool:
    return any((path / marker).is_file() for marker in MARKERS)


def _walk(root: Path, depth: int = 0) -> Iterator[Path]:
    if is_run_dir(root):
        yield root
        return
    if depth >= MAX_DEPTH:
        return
    try:
        children = sorted(p for p in root.iterdir() if p.is_dir())
    except OSError:
        return
    for child in children:
        if not child.name.startswith(".") and child.name not in NOT_RUNS:
            yield from _walk(child, depth + 1)


def _config(path: Path) -> dict[str, Any] | None:
    """The configuration an unfinished job started with (job.json, else Hydra's copy)."""
    try:
        if (path / JOB_FILE).is_file():
            return read_json(path / JOB_FILE).get("identity")
        if (path / ".hydra" / "config.yaml").is_file():
            return OmegaConf.to_container(OmegaConf.load(path / ".hydra" / "config.yaml"))
    except Exception:
        return None
    return None


def _record(path: Path) -> dict[str, Any] | None:
    try:
        return read_json(path / JOB_FILE) if (path / JOB_FILE).is_file() else None
    except DataError:
        return None


def read_job(path: Path) -> Job:
    if (path / METRICS_FILE).is_file() and not (path / FAILED_FILE).is_file():
        try:
            run = RunDir(path)
        except DataError as e:
            return Job(path, "skipped", note=f"{path}: unreadable ({e})")
        run = run.view("finetuned")  # a train.py run: its fine-tuned model's metrics
        task = run.info.get("task", "evaluate")
        if task != "evaluate" or not run.info.get("model"):
            return Job(path, "skipped", note=f"{path}: a '{task}' run, not an evaluation")
        return Job(path, "done", run=run, record=_record(path))
    if (path / FAILED_FILE).is_file():
        try:
            return Job(path, "failed", failure=read_json(path / FAILED_FILE))
        except DataError as e:
            return Job(path, "failed", failure={"error": str(e)})
    return Job(path, "incomplete", config=_config(path))


def find_jobs(paths: Iterable[str | os.PathLike]) -> list[Job]:
    """Every run folder in or below ``paths`` (sweep folders, run folders, any parent)."""
    paths = [Path(p).expanduser() for p in paths]
    if not paths:
        raise UserError("no folder given: pass a sweep folder or run folders")
    found: dict[Path, None] = {}
    for path in paths:
        if not path.is_dir():
            what = "is not a folder" if path.exists() else "does not exist"
            raise UserError(f"{path} {what}: pass a sweep folder or run folders")
        for run in _walk(path):
            found.setdefault(run.resolve(), None)
    if not found:
        where = ", ".join(str(p) for p in paths)
        raise UserError(
            f"no runs under {where}: pass a sweep folder (e.g. outputs/evaluate/multirun/<time>) "
            "or run folders that hold metrics.json"
        )
    return [read_job(p) for p in found]
