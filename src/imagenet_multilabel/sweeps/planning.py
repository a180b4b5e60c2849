"""What a job of a multirun must do, decided from its folder and the sweep folder before
any work (read only, so that every rank of a job decides the same; ``sweeps/job.py`` acts
on it):

- ``metrics.json`` present (it is written last), ``job.json`` (written when the job
  started) records the same configuration and run.json the same data (the fingerprint of
  each dataset's files and label files, data/fingerprint.py): the job is skipped; if only
  the heads differ, or the heads now write metrics the stored results lack, the metrics
  are recomputed from the saved predictions (the ``score`` task's path, no forward pass);
- no usable results of its own, but another job of the sweep folder has them for the same
  configuration up to the heads (a re-run with ``head.*`` overrides, which name other job
  folders): its predictions are reused and the metrics recomputed, again without a forward
  pass;
- anything else (no folder, a killed job, another configuration, photos added, removed
  or replaced, a label file edited): the job runs, after removing the old
  ``metrics.json`` / ``failed.json``.

A job's identity (:func:`identity`) is its resolved config less what does not decide its
predictions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from imagenet_multilabel.builders import build_datasets, build_scorer
from imagenet_multilabel.core.errors import DataError
from imagenet_multilabel.core.files import read_json
from imagenet_multilabel.data.fingerprint import changes, same_data
from imagenet_multilabel.runs.rundir import FAILED_FILE, JOB_FILE, METRICS_FILE, RunDir
from imagenet_multilabel.scoring.metrics.names import metric_key
from imagenet_multilabel.sweeps import dirs  # also registers ${job_dirname:} (hydra.sweep.subdir)

# What a job's identity leaves out besides the output plumbing that also names no job
# folder (sweeps/dirs.plumbing_keys: loggers, callbacks, data.cache, the progress bar): the
# heads (compared on their own: other heads only need the metrics recomputed), where the
# run writes and what it returns. Everything else counts, also settings that only change
# speed (a sweep over num_workers measures each), so a re-run with other settings
# evaluates again.
NOT_IDENTITY = (
    "paths",
    "head",
    "optimized_metric",
    "task_name",
    "trainer.enable_model_summary",
)


def _plain(node: Any) -> Any:
    """JSON-normal form (tuples -> lists, keys sorted) for comparisons."""
    return json.loads(json.dumps(node, sort_keys=True, default=str))


def identity(cfg: DictConfig) -> dict[str, Any]:
    """What decides a job's predictions: the resolved config less the output plumbing
    (:func:`~imagenet_multilabel.sweeps.dirs.plumbing_keys`) and :data:`NOT_IDENTITY`."""
    task_cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    tree = OmegaConf.to_container(task_cfg, resolve=True, throw_on_missing=False)
    for key in (*dirs.plumbing_keys(), *NOT_IDENTITY):
        node, *rest = key.split(".")
        parent = tree
        for part in rest:
            parent = parent.get(node) if isinstance(parent, dict) else None
            node = part
        if isinstance(parent, dict):
            parent.pop(node, None)
    return _plain(tree)


def head_record(cfg: DictConfig) -> Any:
    return _plain(OmegaConf.to_container(cfg.head, resolve=True)) if cfg.get("head") else None


def _diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b)):
            out += _diff_keys(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


# ------------------------------------------------------------------------ metric names


def missing_metrics(run: RunDir, head: DictConfig) -> list[str]:
    """``<dataset>/<metric>`` names the heads write now that the run's metrics lack."""
    scorer = build_scorer(head)
    single, multi = set(scorer.metric_names(False)), set(scorer.metric_names(True))
    labelled_only = multi - single
    missing = []
    for dataset, stored in run.metrics.items():
        expected = multi if labelled_only & set(stored) else single
        missing += [metric_key(dataset, m) for m in sorted(expected - set(stored))]
    return missing


# ---------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class Plan:
    action: str  # "skip" | "rescore" | "run"
    reason: str
    source: Path | None = None  # "rescore": the folder whose predictions are scored
    # the fingerprints of the job's data as planned on (job.json records them)
    data: dict[str, Any] | None = field(default=None, compare=False)


def _finished(job_dir: Path) -> tuple[dict[str, Any], RunDir] | None:
    """(job.json, run) of a complete job folder, else None."""
    if not (job_dir / METRICS_FILE).is_file() or not (job_dir / JOB_FILE).is_file():
        return None
    if (job_dir / FAILED_FILE).is_file():  # failed after writing its metrics
        return None
    try:
        return read_json(job_dir / JOB_FILE), RunDir(job_dir)
    except DataError:
        return None


def data_fingerprints(cfg: DictConfig) -> dict[str, dict[str, Any]]:
    """The fingerprint of every dataset of the job as it is now (data/fingerprint.py): the
    datasets are listed (no image is read) and their label sets resolved."""
    sets = build_datasets(cfg.data, cfg.get("labels"), transform=None)
    return {name: s.fingerprint or {} for name, s in sets.items()}


def data_changes(record: Mapping[str, Any], data: Mapping[str, Mapping[str, Any]]) -> str:
    """What differs between the data a job read (job.json's ``data``, taken when it
    started) and ``data`` now ("" where nothing does)."""
    before = record.get("data")
    if not isinstance(before, Mapping):
        return "its results record no data fingerprint (an older version)"
    if set(before) != set(data):
        return f"datasets {', '.join(sorted(before))} -> {', '.join(sorted(data))}"
    out = []
    for name, now in data.items():
        if not same_data(before.get(name), now):
            out.append(f"{name}: {changes(before.get(name), now)}")
    return "; ".join(out)


def _own_plan(
    job_dir: Path, cfg: DictConfig, data: Mapping[str, Any], rescorable: bool = True
) -> Plan:
    if (job_dir / FAILED_FILE).is_file():
        return Plan("run", "it failed before, trying again")
    if not (job_dir / METRICS_FILE).is_file():
        started = (job_dir / JOB_FILE).is_file()
        return Plan("run", "incomplete results (the job was stopped)" if started else "new job")
    finished = _finished(job_dir)
    if finished is None:
        return Plan("run", "results not usable (no job.json or an unreadable metrics.json)")
    record, run = finished
    changed = _diff_keys(record.get("identity"), identity(cfg))
    if changed:
        return Plan("run", f"results of another configuration (differs in {', '.join(changed)})")
    changed_data = data_changes(record, data)
    if changed_data:
        return Plan("run", f"the data changed since it was read ({changed_data})")
    if record.get("head") != head_record(cfg):
        return Plan("rescore" if rescorable else "run", "the heads changed", job_dir)
    if not rescorable:
        return Plan("skip", "complete results")
    missing = missing_metrics(run, cfg.head)
    if missing:
        reason = f"the metric set has grown ({len(missing)} new, e.g. {missing[0]})"
        return Plan("rescore", reason, job_dir)
    return Plan("skip", "complete results")


def find_donor(job_dir: Path, cfg: DictConfig, data: Mapping[str, Any]) -> Path | None:
    """Another job folder of the sweep with complete results of the same configuration
    (heads aside), of the same data, and their predictions."""
    mine = identity(cfg)
    for other in sorted(p for p in job_dir.parent.iterdir() if p.is_dir() and p != job_dir):
        finished = _finished(other)
        if finished is None or _diff_keys(finished[0].get("identity"), mine):
            continue
        if data_changes(finished[0], data):
            continue
        run = finished[1]
        if set(run.datasets) <= set(run.prediction_files):
            return other
    return None


def plan(job_dir: Path, cfg: DictConfig, rescorable: bool = True) -> Plan:
    """What a job must do, given what its folder (and the sweep folder) holds; read only,
    so that every rank of a job decides the same. What the job would read counts (a
    dataset's files, its label files: :func:`data_fingerprints`)."""
    data = data_fingerprints(cfg)
    own = _own_plan(job_dir, cfg, data, rescorable)
    if own.action != "run" or not rescorable:
        return replace(own, data=data)
    donor = find_donor(job_dir, cfg, data) if job_dir.parent.is_dir() else None
    if donor is not None:
        reason = f"{own.reason}; predictions of the same run in {donor.name}"
        return Plan("rescore", reason, donor, data)
    return replace(own, data=data)
