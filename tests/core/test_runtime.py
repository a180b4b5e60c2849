"""CPU settings: auto threads give each process its share of the cores and respect
OMP_NUM_THREADS; torch's thread count is held at one, re-entrantly, and restored; jobs run
on Python threads; glibc keeps freed memory for reuse."""

from __future__ import annotations

import contextlib
import mmap
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from imagenet_multilabel.core import runtime


@pytest.fixture(autouse=True)
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("cores", "workers", "processes", "expected"),
    [(2, 1, 1, 2), (2, 0, 1, 2), (2, 4, 1, 2), (16, 4, 1, 16), (16, 2, 2, 8), (3, 1, 2, 1)],
)
def test_auto_threads(monkeypatch, cores, workers, processes, expected) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(runtime, "available_cores", lambda: cores)
    assert runtime.set_cpu_threads(None, workers, processes) == expected
    assert torch.get_num_threads() == expected


def test_explicit_threads_and_environment(monkeypatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    assert runtime.set_cpu_threads(None, num_workers=0) == 1
    assert runtime.set_cpu_threads(2, num_workers=1) == 2
    with pytest.raises(ValueError, match=">= 1"):
        runtime.set_cpu_threads(0, num_workers=1)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_keep_freed_memory_applies_on_glibc() -> None:
    assert runtime.keep_freed_memory() is True
    assert runtime.keep_freed_memory() is True  # again: the same settings, still accepted


def _thp_mode() -> str:
    try:
        modes = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return "none"
    return modes.split("[", 1)[1].split("]", 1)[0]


def _thp_eligible(address: int) -> bool:
    """Whether the mapping that holds ``address`` may get huge pages (/proc/self/smaps)."""
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            start, end = (int(x, 16) for x in head.split("-"))
            inside = start <= address < end
        elif inside and head == "THPeligible:":
            return line.split()[1] == "1"
    raise AssertionError("no THPeligible line for the address")


def _private_block(size: int) -> mmap.mmap:
    """A fresh private anonymous mapping (glibc's own kind for large blocks; a shared one
    would be shmem, whose huge pages follow another setting)."""
    return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)


@pytest.mark.skipif(_thp_mode() != "madvise", reason="huge pages on request (madvise) only")
def test_huge_pages_asks_for_them_for_a_large_block_only() -> None:
    # blocks of fresh mappings of their own: whatever earlier tests of this process left in
    # glibc's heap (advice on its pages, a raised mmap threshold) cannot be seen here
    large = torch.frombuffer(_private_block(64 << 20), dtype=torch.uint8)
    middle = large.data_ptr() + (32 << 20)
    assert not _thp_eligible(middle)
    assert runtime.huge_pages(large) is large
    assert _thp_eligible(middle)
    large.fill_(7)  # the same tensor, written as any other
    assert int(large[middle - large.data_ptr()]) == 7
    small = torch.frombuffer(_private_block(8 << 20), dtype=torch.uint8)
    runtime.huge_pages(small)
    assert not _thp_eligible(small.data_ptr() + (4 << 20))


def test_one_torch_thread_is_reentrant_and_restores() -> None:
    torch.set_num_threads(2)
    with runtime.one_torch_thread():
        assert torch.get_num_threads() == 1 and runtime.outer_threads() == 2
        with runtime.one_torch_thread():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1  # the outer one still holds
    assert torch.get_num_threads() == 2 and runtime.outer_threads() == 2


def test_one_torch_thread_held_across_callbacks_and_threads() -> None:
    # the evaluation loop's pattern: enter in one hook, leave in another (idempotent),
    # while other threads enter and leave meanwhile
    torch.set_num_threads(2)
    hold = contextlib.ExitStack()
    hold.enter_context(runtime.one_torch_thread())
    with ThreadPoolExecutor(2) as pool:
        inside = list(pool.map(lambda _: _threads_in_a_hold(), range(4)))
    assert inside == [(1, 2)] * 4 and torch.get_num_threads() == 1
    hold.close()
    hold.close()
    assert torch.get_num_threads() == 2


def _threads_in_a_hold() -> tuple[int, int]:
    with runtime.one_torch_thread():
        return torch.get_num_threads(), runtime.outer_threads()


def test_set_cpu_threads_inside_a_hold_applies_when_it_ends(monkeypatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(1)
    with runtime.one_torch_thread():
        assert runtime.set_cpu_threads(2, num_workers=0) == 2
        assert torch.get_num_threads() == 1 and runtime.outer_threads() == 2
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_run_in_threads(threads: int) -> None:
    torch.set_num_threads(threads)
    seen: set[str] = set()
    lock = threading.Lock()

    def job(i: int) -> tuple[int, int, bool]:
        with lock:
            seen.add(threading.current_thread().name)
        time.sleep(0.01)  # let the pool hand jobs to every thread
        return i, torch.get_num_threads(), torch.is_inference_mode_enabled()

    with torch.inference_mode():
        got = runtime.run_in_threads([lambda i=i: job(i) for i in range(6)])
    assert got == [(i, 1, True) for i in range(6)]  # in order, one torch thread, caller's mode
    assert 1 <= len(seen) <= threads
    assert torch.get_num_threads() == threads
