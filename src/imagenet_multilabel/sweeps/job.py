"""A job of a multirun of ``evaluate.py`` or ``train.py``: the task wrapped so that a sweep
can be resumed and survives a failing job (a single run calls the task itself).

Each job, before any work, compares its folder with its configuration:

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

A job that fails (an unknown model, weights not available offline, a bad dataset, a bug)
writes ``failed.json`` with its one-line reason (and removes any ``metrics.json`` it wrote:
a failed job is never counted done) and the sweep goes on: the leaderboard lists it, and
the command ends with exit code 1 naming the failed jobs once the leaderboard is written.
Outside a multirun nothing changes: errors end the run as before (``entry/run.py``'s
``run_task``, which checks the settings first; a job checks them itself, so that a bad
setting is one failed job).
"""

from __future__ import annotations

import gc
import json
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from imagenet_multilabel.builders import build_datasets, build_loggers, build_scorer
from imagenet_multilabel.checks import check_run_settings, check_train_settings
from imagenet_multilabel.core.config import dataset_names
from imagenet_multilabel.core.distributed import rank_suffix
from imagenet_multilabel.core.errors import DataError, SweepError, find_user_error, one_line
from imagenet_multilabel.core.files import read_json, write_json
from imagenet_multilabel.core.logs import log_to_files
from imagenet_multilabel.core.runtime import release_freed_memory
from imagenet_multilabel.data.fingerprint import changes, same_data
from imagenet_multilabel.runs import lock
from imagenet_multilabel.runs.rundir import (
    FAILED_FILE,
    JOB_FILE,
    METRICS_FILE,
    RunDir,
    forget_result,
)
from imagenet_multilabel.runs.summary import print_summary
from imagenet_multilabel.scoring.metrics.names import flatten_metrics, metric_key
from imagenet_multilabel.sweeps import dirs  # also registers ${job_dirname:} (hydra.sweep.subdir)
from imagenet_multilabel.sweeps.memory import (
    MEMORY_ENV,
    batch_size_of,
    is_out_of_memory,
    job_memory_limit,
    note_retry,
    out_of_memory_reason,
    retry_batch_size,
    with_batch_size,
)
from imagenet_multilabel.tasks.evaluate import evaluate
from imagenet_multilabel.tasks.score import rescore_run
from imagenet_multilabel.tasks.train import train
from imagenet_multilabel.tracking.session import finish_wandb, log_finished_run

log = logging.getLogger(__name__)

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


# ---------------------------------------------------------------------------- actions


def stored_metrics(job_dir: Path) -> dict[str, float]:
    return flatten_metrics(RunDir(job_dir).metrics)


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    tmp.replace(dst)


def rescore(
    job_dir: Path,
    cfg: DictConfig,
    source: Path | None = None,
    data: Mapping[str, Any] | None = None,
) -> dict[str, float]:
    """Recompute metrics from the saved predictions of ``source`` (the job's own folder by
    default) with the configured heads and the label sets stored with the predictions
    (``tasks.rescore.rescore_run``, as ``score`` does); another job's predictions are
    linked in first; run.json is updated, metrics.json written last."""
    source = source or job_dir
    if source != job_dir:
        start(job_dir, cfg, data)
    run = RunDir(source)
    per_dataset, _ = rescore_run(
        run, build_scorer(cfg.head, cfg.get("nonfinite_logits", "error")), {"name": "auto"}
    )
    metrics = flatten_metrics(per_dataset)
    for dataset, path in run.prediction_files.items():
        if source != job_dir:
            _link_or_copy(path, job_dir / "predictions" / f"{dataset}.npz")
    info = dict(run.info)
    info["heads"] = list(cfg.head.keys())
    info["rescored"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    if source != job_dir:
        info["predictions_from"] = str(source)
    write_json(job_dir / "run.json", info)
    _write_job_record(job_dir, cfg, data)
    write_json(job_dir / METRICS_FILE, metrics)  # last: its presence marks a complete job
    print_summary(per_dataset, title=f"re-scored {job_dir.name}")
    return metrics


def log_rescored(cfg: DictConfig, job_dir: Path, metrics: Mapping[str, float]) -> None:
    """The run's loggers (W&B) get the recomputed metrics, tables and figures as if it had
    been evaluated now."""
    loggers = build_loggers(cfg)
    try:
        numbers = {k: v for k, v in metrics.items() if not isinstance(v, str)}  # no hashes
        for logger in loggers:
            logger.log_metrics(numbers)
            logger.save()
        log_finished_run(loggers, job_dir)
    except BaseException:
        finish_wandb(loggers, failed=True)
        raise


def _overrides() -> list[str]:
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def _write_job_record(
    job_dir: Path,
    cfg: DictConfig,
    data: Mapping[str, Any] | None = None,
    retry: tuple[int, int] | None = None,
) -> None:
    record = {
        "overrides": _overrides(),
        "identity": identity(cfg),
        "head": head_record(cfg),
        "data": data_fingerprints(cfg) if data is None else data,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if retry is not None:  # sweeps/memory.py: later resumes keep the smaller batch size
        record["out_of_memory_retry"] = {"retry_batch_size": retry[0], "batch_size": retry[1]}
    write_json(job_dir / JOB_FILE, record)


def start(
    job_dir: Path,
    cfg: DictConfig,
    data: Mapping[str, Any] | None = None,
    retry: tuple[int, int] | None = None,
) -> None:
    """Before a job runs: no stale result may mark it complete or failed, nor stale
    predictions (of a dataset the job no longer has) be scored with it."""
    forget_result(job_dir)
    for name in (FAILED_FILE, "run.json"):
        (job_dir / name).unlink(missing_ok=True)
    shutil.rmtree(job_dir / "predictions", ignore_errors=True)
    _write_job_record(job_dir, cfg, data, retry)


def describe(error: BaseException) -> str:
    user_error = find_user_error(error)
    if user_error is not None:
        return one_line(user_error)
    return f"{type(error).__name__}: {one_line(error)}"


def record_failure(
    job_dir: Path,
    cfg: DictConfig,
    reason: str,
    error: BaseException,
    out_of_memory: int | None = None,
) -> None:
    """failed.json: the one-line reason, and the batch size that ran out of memory
    (``out_of_memory``), which ``resume=`` halves (sweeps/memory.py)."""
    model = cfg.get("model") or {}
    try:
        config = identity(cfg)
    except Exception:  # a config that does not even resolve
        config = None
    record = {
        "error": reason,
        "identity": config,
        "type": type(find_user_error(error) or error).__name__,
        "model": {"name": model.get("name"), "weights": model.get("weights")},
        "datasets": dataset_names(cfg),
        "overrides": _overrides(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if out_of_memory is not None:
        record["out_of_memory"] = {"batch_size": out_of_memory}
    write_json(job_dir / FAILED_FILE, record)


def _failed_value(cfg: DictConfig) -> dict[str, float]:
    name = cfg.get("optimized_metric")
    return {name: math.nan} if name else {}


# ------------------------------------------------------------------------------- jobs


def evaluate_job(cfg: DictConfig) -> Mapping[str, float]:
    """:func:`~imagenet_multilabel.tasks.evaluate.evaluate` as a job of a multirun: complete
    work is skipped, changed heads re-scored, a failure recorded while the sweep goes on
    (see the module docstring)."""
    return sweep_job(evaluate, cfg, rescorable=True, check=check_run_settings)


def train_job(cfg: DictConfig) -> Mapping[str, float]:
    """:func:`~imagenet_multilabel.tasks.train.train` as a job of a multirun, as
    :func:`evaluate_job`; a fine-tuning is never re-scored (its heads decided its
    training): anything but complete results of the same configuration runs it again."""
    return sweep_job(train, cfg, rescorable=False, check=check_train_settings)


def sweep_job(
    task: Callable[[DictConfig], Mapping[str, float]],
    cfg: DictConfig,
    rescorable: bool = True,
    check: Callable[[DictConfig], None] | None = None,
) -> Mapping[str, float]:
    """Run ``task(cfg)`` as the job of a multirun it is: planned from what its folder and
    the sweep folder hold (:func:`plan`), its settings checked by ``check`` (once, as
    ``run_task`` does for a single run) before it runs, its failure recorded in
    ``failed.json``."""
    try:
        return _sweep_job(task, cfg, rescorable, check)
    finally:
        # the next job of the process starts from the same memory: the garbage of this
        # one (a failed job's traceback included) collected, and the memory glibc kept
        # for this job's batches handed back (else it keeps the largest job's so far)
        gc.collect()
        release_freed_memory()


def _sweep_job(
    task: Callable[[DictConfig], Mapping[str, float]],
    cfg: DictConfig,
    rescorable: bool,
    check: Callable[[DictConfig], None] | None,
) -> Mapping[str, float]:
    job_dir = Path(cfg.paths.output_dir)
    writer = rank_suffix() == ""  # rank 0 (or no DDP) writes; every rank decides alike
    retry = retry_batch_size(job_dir)  # ran out of memory before: half its batch size
    if retry is not None:
        with_batch_size(cfg, retry[0])
    try:
        # the job's folder is held while it is planned and written: an identical sweep
        # started beside this one waits here for the job, then finds it complete
        with lock.hold(job_dir if writer else None, what="job", wait=True, on_wait=_waiting):
            return _run_job(task, cfg, job_dir, writer, rescorable, check, retry)
    except Exception as e:
        if isinstance(find_user_error(e), SweepError):
            raise  # the sweep's setting, not this job's: it ends the sweep in one line
        capped = bool(os.environ.get(MEMORY_ENV))
        out_of_memory = batch_size_of(cfg) if is_out_of_memory(e, capped) else None
        reason = describe(e) if out_of_memory is None else out_of_memory_reason(out_of_memory)
        if find_user_error(e) is None and out_of_memory is None:
            log.exception("job %s failed", job_dir.name)  # a bug: its traceback in the log
        log_to_files(log, logging.ERROR, f"job {job_dir.name} failed: {reason}")
        print(f"error: job {job_dir.name} failed: {reason}", file=sys.stderr, flush=True)
        if writer:
            forget_result(job_dir)  # a failed job is not done
            record_failure(job_dir, cfg, reason, e, out_of_memory)
    return _failed_value(cfg)


def _waiting(holder: dict[str, Any]) -> None:
    log.info("this job is being run by another sweep (%s): waiting for it", lock.describe(holder))


def _run_job(
    task: Callable[[DictConfig], Mapping[str, float]],
    cfg: DictConfig,
    job_dir: Path,
    writer: bool,
    rescorable: bool,
    check: Callable[[DictConfig], None] | None,
    retry: tuple[int, int] | None,
) -> Mapping[str, float]:
    """The job planned, checked and run (its folder held: :func:`sweep_job`); ``retry``:
    (batch size, the one that ran out of memory) of a job run again."""
    decision = plan(job_dir, cfg, rescorable)
    if decision.action == "skip":
        log.info("%s: %s, skipped", job_dir.name, decision.reason)
        return stored_metrics(job_dir)
    if decision.action == "rescore":
        log.info("%s: %s: recomputing from saved predictions", job_dir.name, decision.reason)
        if not writer:
            return stored_metrics(decision.source)
        metrics = rescore(job_dir, cfg, decision.source, decision.data)
        log_rescored(cfg, job_dir, metrics)
        return metrics
    verb = "evaluating" if rescorable else "running"
    log.info("%s: %s: %s", job_dir.name, decision.reason, verb)
    if retry is not None:
        log.info("%s: at batch_size=%d (out of memory at %d)", job_dir.name, *retry)
    if writer:
        start(job_dir, cfg, decision.data, retry)
    if check is not None:
        check(cfg)
    with job_memory_limit():
        metrics = task(cfg)
    if writer and retry is not None:
        note_retry(job_dir, retry)
    return metrics
