"""hydra/launcher=submitit_local with ``+hydra.launcher.array_parallelism``: a real multirun
of submitit's local processes runs at most that many jobs at once, and every job's result
is that of the one launch (src/hydra_plugins/imagenet_multilabel_launcher/local.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import demo_folder, demo_photos, error_line, evaluate_py


def _intervals(sweep: Path) -> list[tuple[float, float]]:
    """(start, end) of every job: job.json is written when it starts, metrics.json last."""
    jobs = [p.parent for p in sweep.glob("*/metrics.json")]
    return sorted(
        ((j / "job.json").stat().st_mtime, (j / "metrics.json").stat().st_mtime) for j in jobs
    )


def _most_at_once(intervals: list[tuple[float, float]]) -> int:
    return max(sum(s <= start < e for s, e in intervals) for start, _ in intervals)


@pytest.mark.slow
def test_array_parallelism_caps_the_jobs_run_at_once(tmp_path: Path) -> None:
    photos = demo_folder(tmp_path / "photos", demo_photos()[:4])
    sweep = tmp_path / "sweep"
    proc = evaluate_py(
        "-m",
        "hydra/launcher=submitit_local",
        "+hydra.launcher.array_parallelism=2",
        "model=test_tiny",
        "data=demo",
        f"data.root={photos}",
        "seed=range(5)",
        "num_workers=0",
        "logger=none",
        "callbacks=none",
        "hydra.callbacks.leaderboard.figures=false",
        f"hydra.sweep.dir={sweep}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    intervals = _intervals(sweep)
    assert len(intervals) == 5
    assert _most_at_once(intervals) == 2  # 2, 2, then 1
    seeds = {o for j in sweep.glob("*/job.json") for o in json.loads(j.read_text())["overrides"]}
    assert {f"seed={i}" for i in range(5)} <= seeds


def test_array_parallelism_below_one_is_one_line(tmp_path: Path) -> None:
    proc = evaluate_py(
        "-m",
        "hydra/launcher=submitit_local",
        "+hydra.launcher.array_parallelism=0",
        "model=test_tiny",
        "data=demo",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    )
    assert proc.returncode != 0
    assert "array_parallelism=0" in error_line(proc)
