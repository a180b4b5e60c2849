"""Process-level speed settings: how many CPU threads the forward pass gets."""

from __future__ import annotations

import os

import torch


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. under taskset or Slurm)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def set_cpu_threads(threads: int | None, num_workers: int, processes: int = 1) -> int:
    """Set torch's intra-op threads for this process and return the number.

    ``threads=None`` (auto) keeps ``OMP_NUM_THREADS`` if the environment sets it, and
    otherwise gives the forward pass the cores left after this process's share of the
    machine (``processes`` per node) goes to its ``num_workers`` loader workers, at least
    one. More threads than free cores makes OpenMP threads wait on each other at every
    operator (on a 2-core machine with 2 threads and 1 decoding worker, several times
    slower). Lightning's DDP launchers set their own number (cores per process) unless
    ``OMP_NUM_THREADS`` is set.
    """
    if threads is None:
        if "OMP_NUM_THREADS" in os.environ:
            return torch.get_num_threads()
        threads = max(1, available_cores() // max(1, processes) - num_workers)
    if threads < 1:
        raise ValueError(f"cpu_threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)
    return threads
