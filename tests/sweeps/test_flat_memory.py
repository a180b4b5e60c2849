"""Over a sweep, each job of the multirun process starts from the same memory, open files
and threads (sweeps/job.py hands back what a job freed; sweeps/probe.py measures it), and
the probe tells the jobs a resumed sweep skipped from those it ran."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from tests.helpers import DEMO_ROOT, demo_folder, demo_photos, evaluate_py

PROBE = "+hydra.callbacks.resources._target_=imagenet_multilabel.sweeps.probe.JobResources"


@pytest.mark.slow
def test_jobs_start_from_the_same_memory_after_a_large_job(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in demo_photos()[::25]:
        (photos / name).write_bytes((DEMO_ROOT / name).read_bytes())
    sweep = tmp_path / "sweep"
    # 6 small jobs, 6 large ones (hundreds of MB of activations), 6 small ones: the last
    # small ones must not start with the large ones' memory still held
    proc = evaluate_py(
        "-m",
        "preprocess.img_size=64,512,72",
        "seed=range(6)",
        "model=test_tiny",
        "data=demo",
        f"data.root={photos}",
        "batch_size=16",
        "num_workers=0",
        "logger=none",
        "callbacks=none",
        "hydra.callbacks.leaderboard.figures=false",
        f"hydra.sweep.dir={sweep}",
        PROBE,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = [json.loads(line) for line in (sweep / "jobs_resources.jsonl").read_text().splitlines()]
    assert [j["job"] for j in jobs] == list(range(18)) and not any(j["failed"] for j in jobs)
    first, last = jobs[1:6], jobs[-5:]  # job 0 also imports and warms up
    grew = statistics.median(j["rss_start_mb"] for j in last) / statistics.median(
        j["rss_start_mb"] for j in first
    )
    big = max(j["peak_rss_mb"] for j in jobs) - statistics.median(j["rss_end_mb"] for j in first)
    assert big > 150, f"the large jobs took only {big:.0f} MiB more: the test shows nothing"
    assert grew < 1.10, f"jobs start with {100 * (grew - 1):.0f}% more memory after the large ones"
    assert {j["open_fds"] for j in jobs[1:]} == {jobs[1]["open_fds"]}
    assert {j["threads"] for j in jobs[1:]} == {jobs[1]["threads"]}


@pytest.mark.slow
def test_the_probe_marks_the_jobs_a_resumed_sweep_skipped(tmp_path: Path) -> None:
    photos = demo_folder(tmp_path / "photos", demo_photos()[:3])
    sweep = tmp_path / "sweep"
    args = ["model=test_tiny", "data=demo", f"data.root={photos}", "num_workers=0"]
    args += ["logger=none", "callbacks=none", "hydra.callbacks.leaderboard.figures=false"]
    first = evaluate_py("-m", "seed=0,1", *args, f"hydra.sweep.dir={sweep}", PROBE)
    assert first.returncode == 0, first.stderr[-3000:]
    # the second: seed=1 is done, seed=2 is new
    second = evaluate_py("-m", "seed=1,2", *args, f"resume={sweep}", PROBE)
    assert second.returncode == 0, second.stderr[-3000:]
    lines = (sweep / "jobs_resources.jsonl").read_text().splitlines()
    seed = {
        d.name: next(
            o for o in json.loads((d / "job.json").read_text())["overrides"] if "seed" in o
        )
        for d in sweep.iterdir()
        if (d / "job.json").is_file()
    }
    jobs = [(seed[j["dir"]], j["skipped"]) for j in map(json.loads, lines)]
    assert jobs == [("seed=0", False), ("seed=1", False), ("seed=1", True), ("seed=2", False)]
