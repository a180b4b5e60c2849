"""A job of a multirun that runs out of memory: listed as failed with "out of memory at
batch_size=N" while the sweep goes on, and retried by ``resume=`` at half that batch size,
down to 1 (as timm's bulk runner does).

Out of memory is host memory (torch's CPU allocator failing, Python's ``MemoryError``) or
GPU memory (``torch.cuda.OutOfMemoryError``; this path has been run on CPU only). On Linux
a process that takes more host memory than there is is usually killed by the kernel, not
told: ``IMAGENET_ML_JOB_MEMORY_MB=<MiB>`` caps what each job of a multirun may add to the
process's address space (``RLIMIT_AS``, set when the job starts and lifted when it ends),
so that a job too large fails with the line above instead of taking the sweep down.

The batch size a job ran at is in its run.json (``batch_size``) and in the leaderboard;
a retried job also records ``out_of_memory_retry`` (the batch size that failed) in
run.json and its retry batch size in job.json, which later resumes keep.
"""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, open_dict

from imagenet_multilabel.core.errors import UserError
from imagenet_multilabel.core.files import read_json, write_json
from imagenet_multilabel.data.loading.settings import CPU_BATCH, GPU_BATCH

MEMORY_ENV = "IMAGENET_ML_JOB_MEMORY_MB"
# torch's CPU allocator and CUDA caching allocator say so in these words
_MESSAGES = ("can't allocate memory", "not enough memory", "out of memory")
# oneDNN's words when it cannot allocate a kernel's memory (seen under the job cap)
_CAPPED_MESSAGES = ("could not create a primitive",)


def is_out_of_memory(error: BaseException, capped: bool = False) -> bool:
    """Whether ``error`` or an error it was raised from is an out-of-memory error
    (``capped``: under :data:`MEMORY_ENV`, where oneDNN's failures are failed
    allocations too)."""
    messages = _MESSAGES + (_CAPPED_MESSAGES if capped else ())
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (MemoryError, torch.cuda.OutOfMemoryError)):
            return True
        if isinstance(current, RuntimeError) and any(m in str(current).lower() for m in messages):
            return True
        current = current.__cause__ or current.__context__
    return False


def batch_size_of(cfg: DictConfig) -> int:
    """The batch size a job runs at: ``batch_size``, or the auto value for its device."""
    value = cfg.get("batch_size")
    if value is not None:
        return int(value)
    gpu = str((cfg.get("trainer") or {}).get("accelerator", "cpu")) in ("gpu", "cuda")
    return GPU_BATCH if gpu else CPU_BATCH


def out_of_memory_reason(batch_size: int) -> str:
    if batch_size <= 1:
        return "out of memory at batch_size=1 (the smallest: the job needs a larger machine)"
    return (
        f"out of memory at batch_size={batch_size} (resume= retries it at "
        f"batch_size={batch_size // 2})"
    )


def retry_batch_size(job_dir: Path) -> tuple[int, int] | None:
    """(batch size to run at, the one that failed) where the job's last attempt ran out of
    memory (failed.json) or a retry of it has results (job.json), else None."""
    for name, key in (("failed.json", "out_of_memory"), ("job.json", "out_of_memory_retry")):
        path = job_dir / name
        if not path.is_file():
            continue
        try:
            record = read_json(path).get(key)
        except UserError:
            continue
        if isinstance(record, dict) and isinstance(record.get("batch_size"), int):
            failed = record["batch_size"]
            return int(record.get("retry_batch_size") or max(1, failed // 2)), failed
    return None


def with_batch_size(cfg: DictConfig, batch_size: int) -> DictConfig:
    """``cfg`` (changed in place) running at ``batch_size``."""
    with open_dict(cfg):
        cfg.batch_size = batch_size
    return cfg


def _address_space_mb() -> float | None:
    status = Path("/proc/self/status")
    if not status.is_file():
        return None
    for line in status.read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) / 1024
    return None


@contextlib.contextmanager
def job_memory_limit(env: dict[str, str] | os._Environ = os.environ) -> Iterator[Any]:
    """Inside: the process may grow its address space by at most
    ``IMAGENET_ML_JOB_MEMORY_MB`` MiB (nothing without it, or where there is no /proc)."""
    value = env.get(MEMORY_ENV)
    now = _address_space_mb() if value else None
    if not value or now is None:
        yield None
        return
    try:
        extra = float(value)
    except ValueError:
        raise UserError(f"{MEMORY_ENV}={value!r} is not a number of MiB: e.g. 4096") from None
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = int((now + extra) * 1024 * 1024)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield limit
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def note_retry(job_dir: Path, retry: tuple[int, int]) -> None:
    """run.json of a job that finished at a smaller batch size than one that ran out of
    memory says so (its batch_size is the one it ran at)."""
    path = job_dir / "run.json"
    if path.is_file():
        info = read_json(path)
        info["out_of_memory_retry"] = {"failed_batch_size": retry[1], "batch_size": retry[0]}
        write_json(path, info)
