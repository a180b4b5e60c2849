"""One run per folder (runs/lock.py): a live holder refuses a second run in one line
naming it, a holder that is gone is taken over with a line, a job of a sweep waits."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from imagenet_multilabel.core.errors import UserError
from imagenet_multilabel.runs import lock
from tests.helpers import error_line, evaluate_py, start

HOLD = """
import sys, time
from imagenet_multilabel.runs import lock
with lock.hold(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.readline()  # until the test closes stdin
"""


@pytest.fixture
def holder(tmp_path: Path):
    """A live process holding ``tmp_path/run``."""
    folder = tmp_path / "run"
    proc = start(
        ["-c", HOLD, str(folder)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    yield folder, proc
    proc.stdin.close()
    proc.wait(timeout=30)


def _write_lock(folder: Path, **holder) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / lock.LOCK_FILE
    path.write_text(json.dumps({"started": "2026-01-01 00:00:00", **holder}))
    return path


def test_a_live_holder_refuses_a_second_run_naming_it(holder) -> None:
    folder, proc = holder
    with pytest.raises(UserError) as e:
        lock.acquire(folder)
    line = str(e.value)
    assert f"pid {proc.pid} on host {socket.gethostname()}" in line
    assert "started 20" in line and "hydra.run.dir" in line and "\n" not in line
    assert (folder / lock.LOCK_FILE).is_file()  # the holder's lock is left alone


def test_the_lock_goes_when_its_holder_ends(holder) -> None:
    folder, proc = holder
    proc.stdin.close()
    proc.wait(timeout=30)
    assert not (folder / lock.LOCK_FILE).exists()
    with lock.hold(folder):
        assert (folder / lock.LOCK_FILE).is_file()
    assert not (folder / lock.LOCK_FILE).exists()


def test_the_lock_of_a_killed_run_is_taken_over_with_a_line(tmp_path: Path, caplog) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _write_lock(tmp_path, pid=dead.pid, host=socket.gethostname(), process_started="1")
    with caplog.at_level(logging.WARNING), lock.hold(tmp_path):
        held = json.loads((tmp_path / lock.LOCK_FILE).read_text())
    assert held["pid"] == os.getpid()
    assert f"taking over the lock of a run that is gone (pid {dead.pid}" in caplog.text


def test_a_pid_reused_by_another_process_is_not_the_holder(tmp_path: Path, caplog) -> None:
    # the parent of this process is alive, but it did not start at the recorded time
    _write_lock(tmp_path, pid=os.getppid(), host=socket.gethostname(), process_started="-1")
    with caplog.at_level(logging.WARNING), lock.hold(tmp_path):
        pass
    assert "taking over" in caplog.text


def test_another_hosts_holder_is_named_with_the_file_to_remove(tmp_path: Path) -> None:
    path = _write_lock(tmp_path, pid=1, host="elsewhere-node-7")
    with pytest.raises(UserError) as e:
        lock.acquire(tmp_path)
    line = str(e.value)
    assert "pid 1 on host elsewhere-node-7" in line and "on another host" in line
    assert f"remove {path.resolve()}" in line


def test_a_requeued_slurm_job_takes_over_its_earlier_run(tmp_path: Path, monkeypatch) -> None:
    _write_lock(tmp_path, pid=1, host="elsewhere-node-7", slurm_job="4242")
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    with lock.hold(tmp_path):
        assert json.loads((tmp_path / lock.LOCK_FILE).read_text())["pid"] == os.getpid()


def test_a_hold_is_reentrant_and_the_last_release_removes_it(tmp_path: Path) -> None:
    with lock.hold(tmp_path):
        with lock.hold(tmp_path):
            pass
        assert (tmp_path / lock.LOCK_FILE).is_file()
    assert not (tmp_path / lock.LOCK_FILE).exists()


def test_a_job_waits_for_the_holder(holder) -> None:
    folder, proc = holder
    seen: list[dict] = []
    threading.Timer(1.5, proc.stdin.close).start()
    began = time.monotonic()
    with lock.hold(folder, wait=True, poll=0.1, on_wait=seen.append):
        waited = time.monotonic() - began
    assert waited >= 1.0 and [h["pid"] for h in seen] == [proc.pid]


@pytest.mark.slow
def test_a_second_run_into_a_held_folder_is_refused_before_hydra_writes(holder) -> None:
    """evaluate.py into a folder another run holds: one line naming the holder, exit 2, and
    the holder's .hydra/ config and log left as they were (Hydra writes both before the
    task starts: the folder is held before Hydra runs)."""
    folder, proc = holder
    config = folder / ".hydra" / "config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("the first run's\n")
    done = evaluate_py("model=test_tiny", "logger=none", f"hydra.run.dir={folder}")
    assert done.returncode == 2
    line = error_line(done)
    assert f"is held by another run still writing there: pid {proc.pid}" in line
    assert config.read_text() == "the first run's\n"
    assert not (folder / "evaluate.log").exists() and not (folder / "metrics.json").exists()
