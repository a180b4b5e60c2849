"""Process-level CPU settings: torch's thread count (set only here), glibc memory reuse, huge
pages for large fresh tensors, and running torch work on Python threads under the caller's modes."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, TypeVar

import torch

T = TypeVar("T")


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. under taskset or Slurm)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


# Torch's thread count. The metrics run many mid-sized torch ops in a row; with torch's own
# (OpenMP) intra-op threads each of them synchronises its threads, and on a busy machine,
# where a core is often taken, that costs several times the work itself. So they run with
# one torch thread and share their pieces out between as many Python threads as torch had
# (torch ops release the GIL); the CPU forward pass does the same with whole batches.
_threads_lock = threading.Lock()
_threads = {"depth": 0, "outer": 1}


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Torch ops single-threaded inside; also a decorator. Re-entrant, also across
    threads: the first to enter sets torch's thread count to 1, the last to leave
    restores it (:func:`outer_threads` tells it meanwhile). To hold it across callbacks,
    enter it on a :class:`contextlib.ExitStack` and close the stack to leave."""
    with _threads_lock:
        if _threads["depth"] == 0:
            _threads["outer"] = torch.get_num_threads()
            torch.set_num_threads(1)
        _threads["depth"] += 1
    try:
        yield
    finally:
        with _threads_lock:
            _threads["depth"] -= 1
            if _threads["depth"] == 0:
                torch.set_num_threads(_threads["outer"])


def outer_threads() -> int:
    """Torch's thread count outside :func:`one_torch_thread` (the current count when no
    one holds it)."""
    with _threads_lock:
        return _threads["outer"] if _threads["depth"] else torch.get_num_threads()


def run_in_threads(jobs: Sequence[Callable[[], T]]) -> list[T]:
    """Results of ``jobs``, in order, run on up to :func:`outer_threads` Python threads
    under the caller's modes (:func:`in_caller_modes`), their torch ops single-threaded."""
    with one_torch_thread():
        workers = min(outer_threads(), len(jobs))
        if workers <= 1:
            return [job() for job in jobs]
        run = in_caller_modes(lambda job: job())
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(run, jobs))


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
            return outer_threads()
        threads = max(1, available_cores() // max(1, processes))
    if threads < 1:
        raise ValueError(f"cpu_threads must be >= 1, got {threads}")
    with _threads_lock:
        if _threads["depth"]:  # inside one_torch_thread: the count it restores
            _threads["outer"] = threads
        else:
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


_MADV_HUGEPAGE = 14  # Linux's madvise advice
_HUGE_PAGE = 2 << 20  # a transparent huge page on x86-64 and arm64
_HUGE_PAGES_FROM = 32 << 20  # glibc serves such blocks with an mmap of their own


def huge_pages(t: torch.Tensor) -> torch.Tensor:
    """``t``, a CPU tensor about to be written, with its memory backed by 2 MiB pages where
    Linux offers them on request (transparent huge pages in ``madvise`` mode, a common
    default). Writing a fresh block page-faults it 4 KiB at a time, each page zeroed by the
    kernel first: filling 50,000 x 1000 float32 logits (200 MB) that way took 0.17 s on the
    busy 2-core machine, 0.05 s in huge pages and 0.035 s into pages already touched.
    Only blocks of 32 MB and more, which glibc maps on their own, so that the advice
    ends with them; elsewhere (another system, a GPU tensor) nothing changes. Results do not
    change, only the speed."""
    size = t.numel() * t.element_size()
    if t.device.type != "cpu" or size < _HUGE_PAGES_FROM or not sys.platform.startswith("linux"):
        return t
    start = -(-t.data_ptr() // _HUGE_PAGE) * _HUGE_PAGE
    end = (t.data_ptr() + size) // _HUGE_PAGE * _HUGE_PAGE
    madvise = _madvise()
    if madvise is not None:
        madvise(start, end - start, _MADV_HUGEPAGE)  # a refusal (-1) changes nothing
    return t


@functools.cache
def _madvise() -> Callable[[int, int, int], int] | None:
    try:
        madvise = ctypes.CDLL("libc.so.6").madvise
    except (OSError, AttributeError):
        return None
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return madvise


def release_freed_memory() -> bool:
    """Hand the memory glibc keeps (:func:`keep_freed_memory`) back to the system, e.g.
    after a job of a multirun: the next job starts from the same resident memory, not from
    the largest earlier job's (``malloc_trim``). Returns whether it could be called."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        return False
    return True


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


class InFlight:
    """Run calls on ``threads`` worker threads, at most ``threads + 1`` at a time, and hand
    back each result with the tag it was submitted with, as soon as it is done (in any
    order). A thread that is done starts the queued call at once.

    An error of a call is raised, as it is, by the :meth:`submit` or :meth:`drain` that
    collects it, with a note naming the call's tag (the step it came from).
    """

    def __init__(self, threads: int, name: str = "worker") -> None:

        self.threads = threads
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix=name)
        self._pending: list[tuple[Any, Any]] = []

    def submit(
        self, fn: Callable[..., T], *args: Any, tag: Any = None, label: str = "a call"
    ) -> list[tuple[Any, T]]:
        """Queue ``fn(*args)`` (under the caller's torch modes); returns the (tag, result)
        pairs that finished while the queue was full. ``label`` names the call in the note
        of its error."""
        future = self._pool.submit(in_caller_modes(fn), *args)
        self._pending.append((future, (tag, label)))
        return self._collect() if len(self._pending) > self.threads else []

    def drain(self) -> list[tuple[Any, Any]]:
        """Wait for every call in flight; their (tag, result) pairs."""
        done = []
        while self._pending:
            done += self._collect()
        return done

    def _collect(self) -> list[tuple[Any, Any]]:

        finished = wait([f for f, _ in self._pending], return_when=FIRST_COMPLETED).done
        done = [(f, tag) for f, tag in self._pending if f in finished]
        self._pending = [(f, tag) for f, tag in self._pending if f not in finished]
        out = []
        for future, (tag, label) in done:
            try:
                out.append((tag, future.result()))
            except Exception as e:
                self.close()
                if hasattr(e, "add_note"):  # Python 3.11+
                    e.add_note(f"(in {label})")
                raise
        return out

    def close(self) -> None:
        """Stop the threads (idempotent); calls not started are cancelled."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pending.clear()


def process_resources() -> dict[str, float | int]:
    """This process's resident memory (MiB, now and its peak), open file descriptors and
    threads (every thread of the process, torch's and loaders' included), from /proc where
    there is one (else the peak from getrusage only)."""
    out: dict[str, float | int] = {}
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out["rss_mb" if key == "VmRSS" else "peak_rss_mb"] = round(
                    int(value.split()[0]) / 1024, 1
                )
            elif key == "Threads":
                out["threads"] = int(value)
        out["open_fds"] = len(os.listdir("/proc/self/fd"))
    else:
        import resource  # not on Windows, which has no /proc either

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out["peak_rss_mb"] = round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)
        out["threads"] = threading.active_count()
    return out
