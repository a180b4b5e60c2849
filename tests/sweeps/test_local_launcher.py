"""hydra/launcher=submitit_local with ``+hydra.launcher.array_parallelism``: a real multirun
of submitit's local processes runs at most that many jobs at once, and every job's result
is that of the one launch (src/hydra_plugins/imagenet_multilabel_launcher/local.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.helpers import demo_folder, demo_photos, error_line, evaluate_py
from tests.paths import REPO


def _marks(folder: Path, kind: str) -> dict[int, float]:
    return {int(p.stem): float(p.read_text()) for p in folder.glob(f"*.{kind}")}


@pytest.mark.slow
def test_array_parallelism_caps_the_jobs_run_at_once(tmp_path: Path) -> None:
    photos = demo_folder(tmp_path / "photos", demo_photos()[:4])
    sweep, gate = tmp_path / "sweep", tmp_path / "gate"
    gate.mkdir()
    proc = evaluate_py(
        "-m",
        "hydra/launcher=submitit_local",
        "+hydra.launcher.array_parallelism=2",
        "model=test_tiny",
        "data=demo",
        f"data.root={photos}",
        "seed=range(3)",
        "num_workers=0",
        "logger=none",
        "callbacks=none",
        "hydra.callbacks.leaderboard.figures=false",
        "+hydra.callbacks.gate._target_=tests.sweeps.job_gate.JobGate",
        f"+hydra.callbacks.gate.folder={gate}",
        "+hydra.callbacks.gate.jobs=3",
        f"hydra.sweep.dir={sweep}",
        base={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        },
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(list(sweep.glob("*/metrics.json"))) == 3
    # every job saw at most 2 running (the cap), and the first of each pair saw 2
    most = {int(p.stem): int(p.read_text()) for p in gate.glob("*.most")}
    assert sorted(most) == list(range(3))
    assert max(most.values()) == 2, most
    # waves of 2: job 2 starts after jobs 0 and 1 have ended
    starts, ends = _marks(gate, "start"), _marks(gate, "end")
    for job, started in starts.items():
        earlier = [ends[j] for j in range(job - job % 2)]
        assert all(started > e for e in earlier), (job, starts, ends)
    seeds = {o for j in sweep.glob("*/job.json") for o in json.loads(j.read_text())["overrides"]}
    assert {f"seed={i}" for i in range(3)} <= seeds


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
