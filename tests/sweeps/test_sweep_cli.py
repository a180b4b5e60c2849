"""Real multiruns of evaluate.py: gathered into a leaderboard, a failing job listed, a
killed sweep resumed."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from imagenet_multilabel.core.files import read_json
from imagenet_multilabel.data.datasets.folders import DEMO_ROOT
from tests.helpers import assert_counted_images, evaluate_py, folder_image_ids, start

TINY = ("model=test_tiny", "callbacks=none", "num_workers=0")


def leaderboard(sweep: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((sweep / "leaderboard.csv").open()))


def _image_sets(sweep: Path) -> dict[str, tuple[str, str]]:
    """Each finished job's (dataset, images_sha256) from metrics.json, checked against the
    data fingerprint its job identity read (job.json) and, for the demo photos, against
    their ids found by walking their folder."""
    out = {}
    for job in sorted(p for p in sweep.iterdir() if (p / "metrics.json").is_file()):
        (dataset,) = read_json(job / "job.json")["data"]
        if dataset == "demo":
            sha = assert_counted_images(job, dataset, folder_image_ids(DEMO_ROOT))
        else:
            sha = read_json(job / "metrics.json")[f"{dataset}/images_sha256"]
        assert read_json(job / "job.json")["data"][dataset]["ids_sha256"] == sha
        out[job.name] = (dataset, sha)
    return out


@pytest.mark.slow
def test_multirun_gathers_lists_failures_and_resumes(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    args = (*TINY, "model.name=test_efficientnet,test_resnet,resnet5", "data=demo,patchml")
    proc = evaluate_py("-m", *args, f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 1, proc.stderr[-3000:]  # jobs failed: after the leaderboard
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: 2 job(s) of the sweep failed: ")
    failed = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: job")]
    assert len(failed) == 2 and all("unknown timm model 'resnet5'" in ln for ln in failed)
    assert "leaderboard of 6 jobs (4 done, 2 failed)" in proc.stdout
    rows = leaderboard(sweep)
    assert [(r["model"], r["status"]) for r in rows[:2]] == [
        ("test_efficientnet", "done"),
        ("test_resnet", "done"),
    ] or [(r["model"], r["status"]) for r in rows[:2]] == [
        ("test_resnet", "done"),
        ("test_efficientnet", "done"),
    ]
    assert rows[2]["model"] == "resnet5" and rows[2]["status"] == "failed"
    assert rows[2]["error"].startswith("unknown timm model 'resnet5'; close matches: resnet50")
    for row in rows[:2]:
        assert row["demo/num_images"] == "100.0" and row["patchml/num_images"] == "50.0"
        assert row["patchml/vartopk_strict"] != "" and row["img_size"] == "160"
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir() and p.name != "figures")
    assert (
        "data=demo,model.name=test_resnet,model=test_tiny,num_workers=0" in jobs and len(jobs) == 6
    )

    before = _image_sets(sweep)
    assert len(before) == 4 and len({h for _, h in before.values()}) == 2  # demo, patchml

    # resume: one job's results gone (as if killed before its metrics.json), the two
    # failed jobs tried again, the other three skipped
    (
        sweep / "data=patchml,model.name=test_resnet,model=test_tiny,num_workers=0" / "metrics.json"
    ).unlink()
    proc = evaluate_py(*args, f"resume={sweep}")
    assert proc.returncode == 1, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert log.count("complete results, skipped") == 3
    assert log.count("incomplete results (the job was stopped): evaluating") == 1
    assert log.count("it failed before, trying again: evaluating") == 2
    assert [r["status"] for r in leaderboard(sweep)] == ["done", "done", "failed"]
    assert _image_sets(sweep) == before  # the job run again counted the same images
    assert "scored different image sets" not in (sweep / "leaderboard.md").read_text()
    assert (sweep / "figures" / "label_counts_patchml.png").is_file()
    assert (sweep / "figures" / "benchmarks.png").is_file()  # demo vs patchml per model


@pytest.mark.slow
def test_a_sweep_killed_mid_job_loses_only_that_job(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    args = (*TINY, "model.name=test_efficientnet,test_resnet,test_byobnet", "data=demo")
    proc = start(
        ["evaluate.py", "-m", *args, f"hydra.sweep.dir={sweep}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    second = sweep / "data=demo,model.name=test_resnet,model=test_tiny,num_workers=0"
    deadline = time.monotonic() + 400
    try:
        while not (second / "job.json").is_file():  # job 2 has started
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (second / "metrics.json").exists()
    done = [p for p in sweep.iterdir() if (p / "metrics.json").is_file()]
    assert [p.name for p in done] == [
        "data=demo,model.name=test_efficientnet,model=test_tiny,num_workers=0"
    ]

    proc = evaluate_py(*args, "resume=" + str(sweep))
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert log.count("complete results, skipped") == 1
    assert log.count("incomplete results (the job was stopped): evaluating") == 1
    assert log.count("new job: evaluating") == 1
    assert "leaderboard of 3 jobs (3 done)" in proc.stdout


HOLD = """
import sys
from imagenet_multilabel.runs import lock
with lock.hold(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.readline()  # until the test closes stdin
"""


@pytest.mark.slow
def test_an_identical_sweep_waits_for_the_running_job_and_never_runs_it_again(
    tmp_path: Path,
) -> None:
    """A second identical sweep finds a job of the first still running (its folder held,
    its metrics.json not yet written): it waits, then skips the job the first completed
    (before, it called the job "incomplete results (the job was stopped)" and evaluated
    it again)."""
    import shutil

    args = ("-m", *TINY, "logger=none", "data=patchml", "data.num_images=4")
    first = tmp_path / "first"
    assert evaluate_py(*args, f"hydra.sweep.dir={first}").returncode == 0
    second = tmp_path / "second"
    shutil.copytree(first, second)
    (job,) = [p for p in second.iterdir() if (p / "job.json").is_file()]
    metrics = (job / "metrics.json").read_bytes()
    (job / "metrics.json").unlink()  # the first sweep's job, running
    holder = start(["-c", HOLD, str(job)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    log = tmp_path / "second.out"
    with log.open("w") as out:
        sweep = start(
            [*("evaluate.py", *args), f"hydra.sweep.dir={second}"], stdout=out, stderr=out
        )
        deadline = time.monotonic() + 240
        while "waiting for it" not in log.read_text() and time.monotonic() < deadline:
            assert sweep.poll() is None, log.read_text()[-3000:]
            time.sleep(0.2)
        (job / "metrics.json").write_bytes(metrics)  # the first sweep's job ends
        holder.stdin.close()
        holder.wait(timeout=30)
        assert sweep.wait(timeout=240) == 0, log.read_text()[-3000:]
    said = log.read_text()
    assert f"this job is being run by another sweep (pid {holder.pid} on host" in said
    assert f"{job.name}: complete results, skipped" in said
    assert "evaluating" not in said and "incomplete results" not in said
