"""CPU settings: auto threads give each process its share of the cores and respect
OMP_NUM_THREADS; glibc keeps freed memory for reuse."""

from __future__ import annotations

import sys

import pytest
import torch

from imagenet_multilabel import runtime


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
