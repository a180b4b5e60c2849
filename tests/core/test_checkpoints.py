"""Checkpoint files judged without torch (core/checkpoints.py): what torch may load passes,
what it surely cannot is refused in the line the torch path prints."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest
import torch

from imagenet_multilabel.core.checkpoints import (
    check_checkpoint_file,
    check_checkpoint_option,
    unloadable,
)
from imagenet_multilabel.core.errors import ModelError
from imagenet_multilabel.training.resume import read_resume

STATE = {"state_dict": {"w": torch.arange(3000.0), "b": torch.ones(7)}, "global_step": 3}


def loads(path: Path) -> bool:
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return False
    return True


@pytest.mark.parametrize("protocol", [2, 3])  # what weights_only loads of the legacy format
def test_what_torch_may_load_passes(tmp_path: Path, protocol: int) -> None:
    zipped, legacy = tmp_path / "a.ckpt", tmp_path / "legacy.pth"
    torch.save(STATE, zipped)
    torch.save(STATE, legacy, _use_new_zipfile_serialization=False, pickle_protocol=protocol)
    for path in (zipped, legacy):
        assert loads(path)
        assert unloadable(path) is None
        check_checkpoint_file(path)
    for other in (0, 1, 4, 5):  # torch.load(weights_only=False) loads these: not refused
        torch.save(STATE, legacy, _use_new_zipfile_serialization=False, pickle_protocol=other)
        assert unloadable(legacy) is None
    # torch's oldest format was a tar archive: passed to torch
    with tarfile.open(tmp_path / "old.tar", "w") as tar:
        tar.addfile(tarfile.TarInfo("sys_info"), io.BytesIO(b""))
    assert unloadable(tmp_path / "old.tar") is None


def test_every_cut_of_a_checkpoint_is_refused_and_torch_refuses_it_too(tmp_path: Path) -> None:
    whole = tmp_path / "whole.ckpt"
    torch.save(STATE, whole)
    data = whole.read_bytes()
    cut = tmp_path / "cut.ckpt"
    for length in [*range(0, len(data), 509), len(data) - 22, len(data) - 1]:
        cut.write_bytes(data[:length])
        assert unloadable(cut) is not None, length
        assert not loads(cut), length


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (b"", "an empty file"),
        (bytes(range(256)) * 64, "neither a zip archive of torch.save nor its legacy format"),
        (b"not a checkpoint\n", "neither a zip archive"),
        (None, "a zip archive without the data.pkl of torch.save"),
    ],
)
def test_what_torch_cannot_load_is_damaged(tmp_path: Path, content, detail) -> None:
    path = tmp_path / "bad.ckpt"
    if content is None:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("photos/a.txt", "x")
    else:
        path.write_bytes(content)
    assert not loads(path)
    with pytest.raises(
        ModelError, match="bad.ckpt is damaged .cut short, or not a checkpoint: "
    ) as e:
        check_checkpoint_file(path)
    assert detail in str(e.value) and str(e.value).endswith("replace it with a complete copy")


def test_the_resume_line_names_the_previous_checkpoint(tmp_path: Path) -> None:
    last, prev = tmp_path / "last.ckpt", tmp_path / "last.prev.ckpt"
    torch.save(STATE, last)
    last.write_bytes(last.read_bytes()[:1000])
    with pytest.raises(ModelError, match="start the run again without ckpt_path$"):
        check_checkpoint_option("last", "ckpt_path", last)
    torch.save(STATE, prev)
    with pytest.raises(ModelError) as early:
        check_checkpoint_option("last", "ckpt_path", last)
    # damage the zip check cannot see: the torch path prints the same line, its detail apart
    with zipfile.ZipFile(last, "w") as archive:
        archive.writestr("archive/data.pkl", b"\x00garbage")
    assert unloadable(last) is None
    with pytest.raises(ModelError) as late:
        read_resume("last", last)
    hint = f"ckpt_path={prev}"
    for e in (early, late):
        assert str(e.value).startswith(f"checkpoint {last} is damaged (cut short, or not a")
        assert str(e.value).endswith(f": resume from the previous one, kept for this: {hint}")


def test_a_folder_or_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=f"init_from={tmp_path}: .* is a folder, not a checkpoint"):
        check_checkpoint_option(str(tmp_path), "init_from")
    with pytest.raises(ModelError, match="model.checkpoint=.*nope.pth does not exist$"):
        check_checkpoint_option(str(tmp_path / "nope.pth"), "model.checkpoint")
    check_checkpoint_option(None, "model.checkpoint")
