"""Process-level CPU settings: threads of the forward pass, glibc memory reuse, and running
torch work on other threads under the caller's modes."""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. under taskset or Slurm)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def set_cpu_threads(threads: int | None, num_workers: int, processes: int = 1) -> int:
    """Set torch's intra-op threads for this process and return the number.

    ``threads=None`` (auto) keeps ``OMP_NUM_THREADS`` if the environment sets it, and
    otherwise gives the forward pass this process's share of the cores (``processes`` per
    node), loader workers included: decoding costs about a tenth of a CPU forward pass, so
    leaving it a core of its own idles that core. Measured on an otherwise idle 2-core
    machine (tf_efficientnet_lite0, 1000 photos, 1 worker, batch 32, one batch at a time):
    2 threads 25.8 images/s, 1 thread 14.4. On a machine that other jobs share, fewer
    threads than cores can win: OpenMP threads wait for a taken core at every operator
    (``cpu_threads=1``).
    ``num_workers`` is kept for callers and run records; it does not change the number.
    """
    del num_workers
    if threads is None:
        if "OMP_NUM_THREADS" in os.environ:
            return torch.get_num_threads()
        threads = max(1, available_cores() // max(1, processes))
    if threads < 1:
        raise ValueError(f"cpu_threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)
    return threads


# glibc's mallopt parameters
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -2, -3, -8


def keep_freed_memory() -> bool:
    """Let glibc keep freed memory for reuse instead of handing it back to the system.

    A CPU forward pass allocates and frees hundreds of MB of activations per batch. By
    default glibc serves large blocks with fresh ``mmap`` pages and returns them on
    ``free``, so every batch page-faults (and zeroes) them again: on a 2-core machine a
    third of tf_efficientnet_lite0's CPU time went to the kernel. With one heap for every
    thread, blocks up to 32 MB taken from it, and up to 1 GB of free memory kept at the
    top of the heap, batches reuse the same pages. Returns whether it was applied (glibc
    on Linux only; elsewhere nothing changes). Results do not change, only the speed.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    settings = [
        (_M_ARENA_MAX, 1),
        (_M_MMAP_THRESHOLD, 32 << 20),  # glibc's largest value on 64-bit
        (_M_TRIM_THRESHOLD, 1 << 30),
        (_M_TOP_PAD, 64 << 20),
    ]
    return all(mallopt(param, value) == 1 for param, value in settings)


def in_caller_modes(fn: Callable[..., T]) -> Callable[..., T]:
    """``fn``, to be run on another thread under the calling thread's grad, inference and
    CPU autocast modes (thread-local in torch: Lightning validates in inference mode, and
    an inference tensor cannot be updated outside it)."""
    inference, grad = torch.is_inference_mode_enabled(), torch.is_grad_enabled()
    autocast, dtype = torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")

    def run(*args, **kwargs) -> T:
        with contextlib.ExitStack() as stack:
            stack.enter_context(torch.inference_mode(inference))
            stack.enter_context(torch.set_grad_enabled(grad))
            if autocast:
                stack.enter_context(torch.autocast("cpu", dtype=dtype))
            return fn(*args, **kwargs)

    return run
