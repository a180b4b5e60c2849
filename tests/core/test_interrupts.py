"""A run that is told to stop (SIGTERM, as schedulers pre-empt jobs; SIGINT, Ctrl-C) ends
with one line, exit code 143 / 130 and no metrics.json, on one process and under DDP (it
used to exit 0 on SIGTERM, and 1 with Lightning's line on Ctrl-C)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import error_line, evaluate_py

LINE = "error: interrupted by SIGTERM before the run finished: it wrote no metrics.json"


def _run(tmp_path: Path, wnid_folder: Path, *extra: str):
    return evaluate_py(
        "model=test_tiny",
        "data=folder",
        f"data.root={wnid_folder}",
        "batch_size=2",
        "num_workers=0",  # no loader processes that could outlive their rank
        f"hydra.run.dir={tmp_path / 'run'}",
        "+callbacks.sigterm._target_=tests.interrupting.SignalAt",
        *extra,
    )


@pytest.mark.slow
def test_sigterm_ends_the_run_with_one_line(tmp_path: Path, wnid_folder: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.json").write_text("{}")  # an earlier run's, in a reused folder
    proc = _run(tmp_path, wnid_folder)
    assert proc.returncode == 143, proc.stderr[-2000:]
    assert error_line(proc).startswith(LINE)
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.slow
def test_ctrl_c_ends_the_run_with_one_line(tmp_path: Path, wnid_folder: Path) -> None:
    proc = _run(tmp_path, wnid_folder, "+callbacks.sigterm.signal=SIGINT")
    assert proc.returncode == 130, proc.stderr[-2000:]
    assert error_line(proc).startswith(LINE.replace("SIGTERM", "SIGINT"))
    assert "KeyboardInterrupt" not in proc.stderr
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.slow
@pytest.mark.ddp
def test_sigterm_to_rank0_under_ddp(tmp_path: Path, wnid_folder: Path) -> None:
    proc = _run(
        tmp_path, wnid_folder, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"
    )
    assert proc.returncode == 143, proc.stderr[-2000:]
    assert [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")] == [
        ln for ln in proc.stderr.splitlines() if ln.startswith(LINE)
    ]
    assert not (tmp_path / "run" / "metrics.json").exists()
