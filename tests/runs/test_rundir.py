"""runs.rundir: a run folder is read back whole or refused in one line, and writes that fail
leave no partial result: atomic writes, predictions files, and an evaluation whose output
folder cannot be written (made to fail on purpose: the tests run as root too, where a
read-only folder would not stop a write)."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

from imagenet_multilabel.core.errors import DataError, UserError
from imagenet_multilabel.core.files import atomic_write_bytes, write_json
from imagenet_multilabel.runs import rundir as outputs
from imagenet_multilabel.runs.rundir import RunDir, read_predictions, write_predictions
from imagenet_multilabel.tasks.evaluate import evaluate


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("fail", ["replace", "fsync"])
def test_atomic_write_that_fails_keeps_the_old_file_and_no_temp(tmp_path, monkeypatch, fail):
    path = tmp_path / "metrics.json"
    atomic_write_bytes(path, b"old")
    monkeypatch.setattr(os, fail, _no_space)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_bytes(path, b"new and longer")
    with pytest.raises(OSError, match="No space left"):
        write_json(tmp_path / "run.json", {"a": 1})
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    assert _names(tmp_path) == ["metrics.json"]  # no temp file, no run.json


def _arrays(n: int = 3) -> dict:
    return {
        "index": np.arange(n),
        "files": [f"{i}.jpg" for i in range(n)],
        "target": np.zeros(n, dtype=np.int64),
        "logits": np.ones((n, 5), dtype=np.float32),
        "valid": np.eye(n, 5, dtype=bool),
    }


def _savez_half_then_fail(file, *args, **kwargs) -> None:
    Path(file).write_bytes(b"PK\x03\x04 half a zip")  # what a full disk leaves behind
    _no_space()


@pytest.mark.parametrize("fail", ["savez", "replace"])
def test_write_predictions_that_fails_leaves_no_partial_file(tmp_path, monkeypatch, fail):
    path = tmp_path / "predictions" / "folder.npz"
    write_predictions(path, **_arrays(2))
    if fail == "savez":
        monkeypatch.setattr(np, "savez", _savez_half_then_fail)
    else:
        monkeypatch.setattr(os, "replace", _no_space)
    with pytest.raises(OSError, match="No space left"):
        write_predictions(path, **_arrays(3))
    with pytest.raises(OSError, match="No space left"):
        write_predictions(tmp_path / "predictions" / "other.npz", **_arrays(3))
    monkeypatch.undo()
    assert _names(path.parent) == ["folder.npz"]  # no temp file, no other.npz
    assert len(read_predictions(path)["index"]) == 2  # the earlier file, intact


@pytest.fixture
def tiny_cfg(compose_cfg, wnid_folder):
    return compose_cfg("model=test_tiny", "data=folder", f"data.root={wnid_folder}")


def test_evaluation_into_a_folder_that_cannot_be_written(tiny_cfg, monkeypatch) -> None:
    """Every file created in the output folder fails as in a read-only folder: the error
    names the folder, and no result file, temp file or metrics.json is left."""
    out = Path(tiny_cfg.paths.output_dir)
    mkstemp = tempfile.mkstemp

    def refuse_in_out(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).resolve().is_relative_to(out.resolve()):
            raise PermissionError(errno.EACCES, "Permission denied", str(dir))
        return mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(outputs.tempfile, "mkstemp", refuse_in_out)
    with pytest.raises((OSError, UserError), match="Permission denied"):
        evaluate(tiny_cfg)
    monkeypatch.undo()
    left = [p for p in out.rglob("*") if p.is_file()]
    assert [p for p in left if p.suffix in (".json", ".npz", ".tmp")] == []
    with pytest.raises(DataError, match="no metrics.json"):
        RunDir(out)


def test_evaluation_failing_at_its_last_write_leaves_no_metrics(tiny_cfg, monkeypatch) -> None:
    """metrics.json is written last and atomically: when its write fails, the run folder
    holds the other results but no metrics.json and no temp file, so no reader takes it
    for a finished run."""
    out = Path(tiny_cfg.paths.output_dir)
    replace = os.replace

    def fail_for_metrics(src, dst, *args, **kwargs):
        if Path(dst).name == "metrics.json":
            _no_space()
        return replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", fail_for_metrics)
    with pytest.raises(OSError, match="No space left"):
        evaluate(tiny_cfg)
    monkeypatch.undo()
    assert (out / "run.json").is_file() and (out / "predictions" / "folder.npz").is_file()
    assert not (out / "metrics.json").exists()
    assert [p.name for p in out.rglob("*") if p.name.startswith(".metrics.json")] == []
    with pytest.raises(DataError, match="did not finish"):
        RunDir(out)


# ------------------------------------------------------------------ reading a run back


def _run(folder: Path, counted: int, stored: int) -> RunDir:
    write_json(folder / "metrics.json", {"folder/num_images": counted, "folder/top1": 50.0})
    write_predictions(
        folder / "predictions" / "folder.npz",
        index=np.arange(stored),
        files=[f"{i}.jpg" for i in range(stored)],
        target=np.zeros(stored, dtype=np.int64),
        logits=np.zeros((stored, 1000), dtype=np.float32),
    )
    return RunDir(folder)


def test_predictions_of_the_run_are_read(tmp_path: Path) -> None:
    assert len(_run(tmp_path, 3, 3).predictions("folder")["index"]) == 3


def test_predictions_of_another_run_are_refused(tmp_path: Path) -> None:
    """A predictions file copied in from another run is complete in itself: score re-scored
    it under this run's name without a word."""
    with pytest.raises(DataError, match=r"folder.npz holds 2 images but metrics.json counts 3"):
        _run(tmp_path, 3, 2).predictions("folder")
