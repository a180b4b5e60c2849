"""What a run prints, once (core/logs.py): an error as one ``error:`` line (and once in the
log file), Lightning's INFO lines once, its hints that do not concern the user dropped."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import TINY_TRAIN, error_line, evaluate_py, make_wnid_folders, train_py


@pytest.mark.slow
def test_an_error_is_printed_once_and_logged_once(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    (photos / "not_a_wnid").mkdir(parents=True)
    make_wnid_folders(photos, [1])
    run = tmp_path / "run"
    done = evaluate_py(
        "model=test_tiny",
        "logger=none",
        "data=folder",
        f"data.root={photos}",
        f"hydra.run.dir={run}",
    )
    assert done.returncode == 2
    line = error_line(done)
    message = line.removeprefix("error: ")
    assert (done.stdout + done.stderr).count(message) == 1, done.stdout + done.stderr
    assert (run / "evaluate.log").read_text().count(message) == 1


@pytest.mark.slow
def test_lightning_lines_once_and_its_irrelevant_hints_dropped(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"  # an srun on PATH, as on a SLURM login node
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "srun").chmod(0o755)
    done = train_py(
        *TINY_TRAIN,
        f"hydra.run.dir={tmp_path / 'run'}",
        env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    said = done.stdout + done.stderr
    assert said.count("GPU available: False") == 1, said
    assert "Tip:" not in said and "srun" not in said
    assert (tmp_path / "run" / "train.log").read_text().count("GPU available: False") == 1
