"""A job that runs out of memory is listed as failed with "out of memory at batch_size=N",
the sweep goes on, and resume= retries it at half the batch size (sweeps/memory.py); the
memory really runs out (RLIMIT_AS on the job's process), nothing is mocked."""

from __future__ import annotations

import json
import resource
from pathlib import Path

import pytest
import torch

from imagenet_multilabel.sweeps.memory import (
    MEMORY_ENV,
    is_out_of_memory,
    job_memory_limit,
    out_of_memory_reason,
)
from tests.helpers import DEMO_ROOT, demo_photos, evaluate_py


def test_a_capped_job_runs_out_of_host_memory_and_the_cap_is_lifted_after() -> None:
    before = resource.getrlimit(resource.RLIMIT_AS)
    with pytest.raises(RuntimeError) as caught, job_memory_limit({MEMORY_ENV: "64"}):
        torch.empty(256 * 2**20, dtype=torch.uint8).fill_(1)  # 256 MiB > 64 MiB
    assert is_out_of_memory(caught.value)
    assert resource.getrlimit(resource.RLIMIT_AS) == before
    torch.empty(256 * 2**20, dtype=torch.uint8).fill_(1)  # fine again
    wrapped = RuntimeError("in the forward pass of batch 3")
    wrapped.__cause__ = caught.value
    assert is_out_of_memory(wrapped) and is_out_of_memory(MemoryError())
    for other in (RuntimeError("size mismatch"), ValueError("out of range"), KeyError("x")):
        assert not is_out_of_memory(other)
    onednn = RuntimeError("could not create a primitive")  # oneDNN's, under the cap
    assert is_out_of_memory(onednn, capped=True) and not is_out_of_memory(onednn)
    assert out_of_memory_reason(1).startswith("out of memory at batch_size=1 (the smallest")


@pytest.mark.slow
def test_out_of_memory_fails_the_job_and_resume_retries_it_at_half_the_batch(
    tmp_path: Path,
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in demo_photos()[::12][:8]:
        (photos / name).write_bytes((DEMO_ROOT / name).read_bytes())
    sweep = tmp_path / "sweep"
    # 448 px at batch 8 needs more than the job may add to the process (measured: it
    # fails at 8 and fits at 4); 64 px fits at 8
    args = [
        "model=test_tiny",
        "data=demo",
        f"data.root={photos}",
        "batch_size=8",
        "preprocess.img_size=448,64",  # the big one first: the cap counts from its start
        "num_workers=0",
        "cpu_threads=1",
        "logger=none",
        "callbacks=none",
        "hydra.callbacks.leaderboard.figures=false",
    ]
    env = {MEMORY_ENV: "150"}
    first = evaluate_py("-m", *args, f"hydra.sweep.dir={sweep}", env=env)
    assert first.returncode == 1, first.stderr[-3000:]
    jobs = {
        size: job.parent
        for job in sweep.glob("*/job.json")
        for size in (448, 64)
        if f"preprocess.img_size={size}" in json.loads(job.read_text())["overrides"]
    }
    big, small = jobs[448], jobs[64]
    failed = json.loads((big / "failed.json").read_text())
    assert failed["error"] == "out of memory at batch_size=8 (resume= retries it at batch_size=4)"
    assert failed["out_of_memory"] == {"batch_size": 8}
    assert (small / "metrics.json").is_file()  # the sweep went on

    second = evaluate_py(*args, f"resume={sweep}", env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    run = json.loads((big / "run.json").read_text())
    assert run["batch_size"] == 4
    assert run["out_of_memory_retry"] == {"failed_batch_size": 8, "batch_size": 4}
    assert json.loads((small / "run.json").read_text())["batch_size"] == 8
    rows = {r["img_size"]: r for r in json.loads((sweep / "leaderboard.json").read_text())["rows"]}
    assert (rows[448]["batch_size"], rows[448]["out_of_memory_at_batch_size"]) == (4, 8)
    assert (rows[64]["batch_size"], rows[64]["out_of_memory_at_batch_size"]) == (8, None)
    assert "| 4 (out of memory at 8) |" in (sweep / "leaderboard.md").read_text()
