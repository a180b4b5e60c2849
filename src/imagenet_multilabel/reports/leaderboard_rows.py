"""The leaderboard's rows: finished runs merged into one row per model, weights,
preprocessing and settings (runs of one such key that share a dataset kept apart, told
apart by their settings), failed and incomplete jobs attached to the row of their
configuration."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagenet_multilabel.core.config import dotted
from imagenet_multilabel.reports.published import Comparison
from imagenet_multilabel.runs.gather import Job
from imagenet_multilabel.scoring.metrics.names import split_metric_key

# run.json entries that do not tell two runs' results apart (machine, timing, speed-only
# settings) or that are columns already (model, preprocessing, datasets)
NOT_SETTINGS = (
    "task",
    "model",
    "preprocessing",
    "datasets",
    "versions",
    "git_commit",
    "host",
    "wall_seconds",
    "validate_seconds",
    "images_per_second",
    "timings",
    "resources",
    "num_images",
    "num_workers",
    "cpu_threads",
    "cpu_parallel",
    "keep_freed_memory",
    "rescored",
    "predictions_from",
    "decode_cache",
    "trainer.devices",
    "trainer.num_nodes",
    "trainer.world_size",
    # train.py's run.json: the run's own files and timings, and when it read its data
    "checkpoints",
    "extract_seconds",
    "fit_seconds",
    "final_seconds",
    "training_data.source.fingerprint.read",
)


def _dropped(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in NOT_SETTINGS)


def settings_of(info: Mapping[str, Any], head: Any = None) -> dict[str, Any]:
    """The entries of run.json that may change results, flattened (``trainer.precision``),
    with the heads' configuration (``head.multilabel.mode``) where job.json records it."""
    out = {k: v for k, v in dotted(info).items() if not _dropped(k)}
    if head:
        out.update(dotted({"head": head}))
    return out


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


# what a job's configuration has of its datasets: the leaderboard's columns, not its rows
DATASET_KEYS = ("data", "labels")


def _config_part(identity: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in identity.items() if k not in DATASET_KEYS}


def config_key(identity: Mapping[str, Any] | None) -> str | None:
    """What makes a leaderboard row of a job's configuration (job.json's or failed.json's
    ``identity``): all of it (model, weights, preprocessing, settings) but its datasets,
    which are the row's columns."""
    if not isinstance(identity, Mapping) or not identity.get("model"):
        return None
    return _key(_config_part(identity))


def _config_label(config: Mapping[str, Any], others: Sequence[Row]) -> str:
    """``preprocess.img_size=192``: how an unfinished job's configuration differs from
    that of another row of its model."""
    mine = dotted(config)
    for row in others:
        if row.config is None:
            continue
        theirs = dotted(row.config)
        differ = [k for k in sorted(set(mine) | set(theirs)) if mine.get(k) != theirs.get(k)]
        if differ:
            return ", ".join(f"{k}={shorten(mine.get(k))}" for k in differ)
    return ""


def shorten(value: Any, width: int = 48) -> str:
    text = value if isinstance(value, str) else _key(value)
    return text if len(text) <= width else "..." + text[-(width - 3) :]


@dataclass
class Row:
    model: str
    weights: str | None
    preprocessing: dict[str, Any] | None
    settings: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    num_params: int | None = None
    runs: dict[str, Path] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    image_sets: dict[str, dict[str, Any]] = field(default_factory=dict)  # runs/image_sets.py
    comparisons: dict[str, list[Comparison]] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    incomplete: list[dict[str, Any]] = field(default_factory=list)
    images: int = 0
    seconds: float = 0.0
    # the batch size its runs ran at (run.json), and the one that ran out of memory
    # before a resume retried it smaller (sweeps/memory.py)
    batch_size: int | None = None
    out_of_memory_at: int | None = None
    # the configurations of the row's jobs (less their datasets): an unfinished job joins
    # the row of its own configuration only
    config_keys: set[str] = field(default_factory=set)
    config: dict[str, Any] | None = None  # one job's

    # when a sweep job planned on its data (job.json), for runs whose run.json lacks it
    planned_read: list[str] = field(default_factory=list)

    @property
    def data_read(self) -> str | None:
        """When the row's data were read (the oldest of its datasets' fingerprints in
        run.json, else in job.json)."""
        times = [
            str(fp["read"])
            for record in self.records.values()
            if isinstance(fp := record.get("fingerprint"), Mapping) and fp.get("read")
        ]
        times = times or self.planned_read
        return min(times) if times else None

    @property
    def done(self) -> bool:
        return bool(self.metrics)

    @property
    def status(self) -> str:
        if not self.done:
            if self.failures:
                return "failed"
            return "incomplete"
        return "partial" if self.failures or self.incomplete else "done"

    @property
    def error(self) -> str:
        """The failures' reasons, each once (with their datasets on a partial row)."""
        reasons = (
            f"{','.join(f['datasets']) or '?'}: {f['error']}" if self.done else f["error"]
            for f in self.failures
        )
        return "; ".join(dict.fromkeys(reasons))

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else math.nan

    @property
    def label_origins(self) -> str:
        """``<dataset>: <label set> (<origin>)`` of the datasets scored with a label file
        that records its origin (reviewed by N people, model-made); empty where none."""
        return "; ".join(
            f"{d}: {r.get('labels')} ({r['label_origin']})"
            for d, r in self.records.items()
            if r.get("label_origin")
        )

    def value(self, column: str) -> float:
        dataset, metric = split_metric_key(column)
        value = self.metrics.get(dataset, {}).get(metric)
        return math.nan if value is None else float(value)

    def add_run(self, job: Job) -> None:
        run = job.run
        info = run.info
        self.num_params = (info.get("model") or {}).get("num_params", self.num_params)
        self.batch_size = info.get("batch_size", self.batch_size)
        retry = info.get("out_of_memory_retry")
        if isinstance(retry, Mapping):
            self.out_of_memory_at = retry.get("failed_batch_size")
        for dataset in run.datasets:
            self.runs[dataset] = job.path
            self.metrics[dataset] = dict(run.metrics[dataset])
            self.records[dataset] = dict((info.get("datasets") or {}).get(dataset) or {})
            if dataset in run.image_sets:
                self.image_sets[dataset] = dict(run.image_sets[dataset])
        data = (job.record or {}).get("data")
        if isinstance(data, Mapping):
            self.planned_read += [
                str(fp["read"])
                for fp in data.values()
                if isinstance(fp, Mapping) and fp.get("read")
            ]
        identity = (job.record or {}).get("identity")
        key = config_key(identity)
        if key is not None:
            self.config_keys.add(key)
            self.config = self.config or _config_part(identity)
        rate = info.get("images_per_second")
        images = int(info.get("num_images") or 0)
        if rate and images:
            self.images += images
            self.seconds += images / float(rate)


def _preprocessing_key(pp: Mapping[str, Any] | None) -> str:
    """Runs recorded before ``hflip`` existed match runs with ``hflip: false``."""
    return _key({k: v for k, v in (pp or {}).items() if not (k == "hflip" and not v)})


def _row_key(job: Job) -> tuple:
    info = job.run.info
    pp = info.get("preprocessing")
    settings = settings_of(info, (job.record or {}).get("head"))
    weights = (info.get("model") or {}).get("weights")
    return (job.model, weights, _preprocessing_key(pp), _key(settings))


def _family(weights: str | None) -> str | None:
    """Fine-tuned weights (``fine-tuned:<run>``: one per train.py run) are one family, so
    that the rows of a train sweep are told apart by the settings that differ."""
    return "fine-tuned" if str(weights).startswith("fine-tuned:") else weights


def _finished_at(job: Job) -> float:
    try:
        return (job.path / "metrics.json").stat().st_mtime
    except OSError:
        return 0.0


def _newest_runs(jobs: Sequence[Job]) -> tuple[list[Job], list[str]]:
    """Runs of the same model, settings and datasets that differ in nothing but their
    folders (a run repeated): the newest kept, the others named in a note."""
    newest: dict[tuple, Job] = {}
    left: dict[tuple, list[Job]] = {}
    for job in jobs:
        if _family(job.run.info.get("model", {}).get("weights")) == "fine-tuned":
            continue  # each its own weights (its folder)
        key = (*_row_key(job), tuple(sorted(job.run.datasets)))
        if key in newest:
            older, newer = sorted((newest[key], job), key=_finished_at)
            newest[key] = newer
            left.setdefault(key, []).append(older)
        else:
            newest[key] = job
    dropped = {id(j) for js in left.values() for j in js}
    notes = [
        f"{len(js)} earlier run(s) of {newest[key].model} with the same settings and datasets "
        f"left out ({', '.join(str(j.path) for j in js)}): the newest, {newest[key].path}, kept"
        for key, js in left.items()
    ]
    return [j for j in jobs if id(j) not in dropped], notes


def rows_of(jobs: Sequence[Job]) -> tuple[list[Row], list[str]]:
    """Finished runs merged into rows: a row per (model, weights, preprocessing, settings);
    runs of one such key that share a dataset go into separate rows, but a run repeated
    (same settings and datasets) keeps its newest only."""
    jobs, notes = _newest_runs(jobs)
    groups: dict[tuple, list[Row]] = {}
    for job in jobs:
        info = job.run.info
        model = info.get("model") or {}
        pp = info.get("preprocessing")
        settings = settings_of(info, (job.record or {}).get("head"))
        key = _row_key(job)
        rows = groups.setdefault(key, [])
        row = next((r for r in rows if not set(r.runs) & set(job.run.datasets)), None)
        if row is None:
            row = Row(job.model, model.get("weights"), pp, settings)
            rows.append(row)
        row.add_run(job)
    rows = [row for rs in groups.values() for row in rs]
    by_model: dict[tuple, list[Row]] = {}
    for row in rows:
        family = (row.model, _family(row.weights), _preprocessing_key(row.preprocessing))
        by_model.setdefault(family, []).append(row)
    for (model, _, _), same in by_model.items():
        if len(same) > 1:
            notes.append(_label(model, same))
    return rows, notes


def _descriptor(row: Row) -> dict[str, Any]:
    desc = dict(row.settings)
    for dataset, record in row.records.items():
        for k, v in dotted(record).items():
            if k != "num_images" and not k.startswith("fingerprint."):
                desc[f"{dataset}.{k}"] = v
    return desc


def _label(model: str, rows: list[Row]) -> str:
    """Tell apart rows of one model and preprocessing by the settings that differ."""
    descs = [_descriptor(r) for r in rows]
    keys = sorted({k for d in descs for k in d})
    differing = [k for k in keys if len({_key(d[k]) for d in descs if k in d}) > 1]
    labels = [", ".join(f"{k}={shorten(d[k])}" for k in differing if k in d) for d in descs]
    for row, label in zip(rows, labels, strict=True):
        if not label or labels.count(label) > 1:  # the same settings: the run folders
            names = sorted({p.name for p in row.runs.values()})
            label = ", ".join(filter(None, [label, "run=" + "+".join(names)]))
        row.label = label
    what = ", ".join(differing) if differing else "nothing but their run folders"
    return (
        f"{len(rows)} rows for {model}: its runs of one dataset differ in {what}; "
        "all kept, told apart in the settings column"
    )


def attach_unfinished(rows: list[Row], jobs: Sequence[Job]) -> None:
    """Failed and incomplete jobs go to their model's (first) row, else to a row of their
    own (one per model)."""
    for job in jobs:
        entry = {"job": str(job.path), "datasets": job.datasets}
        if job.status == "failed":
            entry["error"] = str((job.failure or {}).get("error") or "failed (no reason recorded)")
        identity = (job.failure or {}).get("identity") if job.failure else job.config
        key = config_key(identity)
        if key is not None:  # the row of the same model, weights and preprocessing only
            mine = [r for r in rows if key in r.config_keys]
        else:  # recorded by an older version: its model's row
            mine = [r for r in rows if r.model == job.model and r.done]
            mine = mine or [r for r in rows if r.model == job.model]
        if not mine:
            weights = ((job.failure or job.config or {}).get("model") or {}).get("weights")
            row = Row(job.model, weights, None)
            if key is not None:
                row.config_keys.add(key)
                row.config = _config_part(identity)
                same_model = [r for r in rows if r.model == job.model]
                if same_model:  # told apart from the others
                    label = _config_label(row.config, same_model)
                    row.label = label or f"job={job.path.name}"
                    for other in same_model:
                        if not other.label and other.config is not None:
                            other.label = _config_label(other.config, [row])
            rows.append(row)
            mine = [row]
        target = mine[0]
        (target.failures if job.status == "failed" else target.incomplete).append(entry)
