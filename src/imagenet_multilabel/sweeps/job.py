"""A job of a multirun of ``evaluate.py`` or ``train.py``: the task wrapped so that a sweep
can be resumed and survives a failing job (a single run calls the task itself).

Each job, before any work, is planned from what its folder and the sweep folder hold
(:mod:`.planning`: skip complete results, re-score saved predictions, or run); here the
plan is carried out: the job's folder held (``runs/lock.py``), its record (``job.json``)
written, its metrics recomputed or its task run, its failure recorded.

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
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from imagenet_multilabel.builders import build_loggers, build_scorer
from imagenet_multilabel.checks import check_run_settings, check_train_settings
from imagenet_multilabel.core.config import dataset_names
from imagenet_multilabel.core.distributed import rank_suffix
from imagenet_multilabel.core.errors import SweepError, find_user_error, one_line
from imagenet_multilabel.core.files import write_json
from imagenet_multilabel.core.logs import log_to_files
from imagenet_multilabel.core.runtime import release_freed_memory
from imagenet_multilabel.runs import lock
from imagenet_multilabel.runs.rundir import (
    FAILED_FILE,
    JOB_FILE,
    METRICS_FILE,
    RunDir,
    forget_result,
)
from imagenet_multilabel.runs.summary import print_summary
from imagenet_multilabel.scoring.metrics.names import flatten_metrics
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
from imagenet_multilabel.sweeps.planning import data_fingerprints, head_record, identity, plan
from imagenet_multilabel.tasks.evaluate import evaluate
from imagenet_multilabel.tasks.score import rescore_run
from imagenet_multilabel.tasks.train import train
from imagenet_multilabel.tracking.session import finish_wandb, log_finished_run

log = logging.getLogger(__name__)

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
