"""The test Slurm's daemons end with the test process however it ends (killed, timed
out), and a cluster's start stops the leftovers of an earlier session whose owner is gone,
never a live session's (tests/sweeps/slurm_cluster.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imagenet_multilabel.core.processes import start_time
from tests.helpers import REPO
from tests.sweeps.slurm_cluster import DAEMONS, _alive, reap_leftovers


def _daemon() -> subprocess.Popen:
    """A stand-in daemon: a process in a session of its own, as the cluster starts them."""
    return subprocess.Popen(["sleep", "600"], start_new_session=True)


def _record(folder: Path, owner: int, daemons: dict[str, subprocess.Popen]) -> None:
    folder.mkdir()
    record = {
        "owner": {"pid": owner, "start": start_time(owner) or "gone"},
        "daemons": {n: {"pid": p.pid, "start": start_time(p.pid)} for n, p in daemons.items()},
    }
    (folder / DAEMONS).write_text(json.dumps(record))


@pytest.mark.slow
def test_leftovers_of_a_gone_owner_are_stopped_a_live_owners_kept(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    left, kept = _daemon(), _daemon()
    try:
        _record(tmp_path / "slurm-old", gone.pid, {"slurmctld": left})
        _record(tmp_path / "slurm-live", os.getpid(), {"slurmctld": kept})
        stopped = reap_leftovers(tmp_path)
        assert stopped == [f"{tmp_path / 'slurm-old'}: slurmctld {left.pid}"]
        assert left.wait(timeout=30) == -signal.SIGTERM
        assert kept.poll() is None and (tmp_path / "slurm-live" / DAEMONS).is_file()
        assert not (tmp_path / "slurm-old" / DAEMONS).exists()
    finally:
        for proc in (left, kept):
            proc.kill()
            proc.wait()


START = """
import json, sys
from tests.sweeps.slurm_cluster import Unavailable, start_cluster
try:
    cluster = start_cluster(nodes=1)
except Unavailable as e:
    print(json.dumps({"skip": str(e)}), flush=True)
    raise SystemExit(0)
print(json.dumps({"root": str(cluster.root)}), flush=True)
sys.stdin.readline()
"""


@pytest.mark.slow
@pytest.mark.slurm
def test_the_daemons_end_when_the_test_process_is_killed() -> None:
    """A test session killed (SIGKILL: no fixture teardown runs) takes its Slurm daemons
    with it (before, munged, mariadbd, slurmdbd, slurmctld and the slurmds kept running)."""
    owner = subprocess.Popen(
        [sys.executable, "-c", START],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    said = json.loads(owner.stdout.readline() or '{"skip": "the cluster did not start"}')
    if "skip" in said:
        owner.kill()
        pytest.skip(said["skip"])
    record = json.loads((Path(said["root"]) / DAEMONS).read_text())
    daemons = record["daemons"]
    assert {"munged", "mariadbd", "slurmdbd", "slurmctld"} <= set(daemons)
    assert all(_alive(d) for d in daemons.values())
    owner.kill()
    owner.wait()
    deadline = time.monotonic() + 60
    while any(_alive(d) for d in daemons.values()) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = [n for n, d in daemons.items() if _alive(d)]
    assert not left, f"still running after their owner was killed: {left}"
