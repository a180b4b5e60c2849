"""Checkpoint files judged without torch, so that the config check refuses them before
torch is imported: a path that is not a file, and a file torch surely cannot load (empty,
cut short, not a checkpoint at all). :func:`damaged` writes the one line of a damaged
checkpoint, here and in ``backbones.read_checkpoint`` (which finds, when it loads the
file, the damage these checks cannot see). A file torch may load always passes: a zip
archive whose directory is whole, or a file of torch's legacy formats (a pickle that
starts with torch's magic number, or a tar archive)."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

from imagenet_multilabel.core.errors import ModelError

ZIP_MAGIC = b"PK\x03\x04"  # how torch.save's zip archives start (torch.serialization)
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER: a legacy file's first
LEGACY_HEAD = 256  # bytes read for that first pickle (a few dozen in any protocol)


def damaged(path: str | Path, detail: str, hint: str = "") -> ModelError:
    """The line of a checkpoint file that cannot be loaded (``hint``: what to do instead;
    default: replace the file)."""
    return ModelError(
        f"checkpoint {path} is damaged (cut short, or not a checkpoint: {detail}): "
        + (hint or "replace it with a complete copy")
    )


def checkpoint_file(value: Any, key: str, path: Path) -> Path:
    """``path`` (what ``key=value`` names) when it is a file; else one line: a folder is
    "a folder, not a checkpoint file"."""
    if path.is_dir():
        raise ModelError(
            f"{key}={value}: {path} is a folder, not a checkpoint file: give a file in it "
            "(e.g. checkpoints/last.ckpt of a train run)"
        )
    if not path.is_file():
        hint = " (pass hydra.run.dir=<the run to resume>)" if value == "last" else ""
        raise ModelError(f"{key}={value}: {path} does not exist{hint}")
    return path


def resume_path(value: Any, out: Path) -> Path | None:
    """The file ``ckpt_path=value`` names: null (start), ``last`` (the run folder ``out``'s
    checkpoints/last.ckpt) or a file."""
    if value in (None, "", "null"):
        return None
    path = out / "checkpoints" / "last.ckpt" if value == "last" else Path(str(value)).expanduser()
    return checkpoint_file(value, "ckpt_path", path)


def check_checkpoint_option(value: Any, key: str, path: Path | None = None) -> None:
    """The checkpoint ``key=value`` names (``path``, where it is not ``value`` itself) is a
    file that torch may load: one line otherwise, the damaged one saying what to do
    instead (for ``ckpt_path``: :func:`resume_hint`)."""
    if value in (None, "", "null"):
        return
    if path is None:
        path = checkpoint_file(value, key, Path(str(value)).expanduser())
    check_checkpoint_file(path, resume_hint(path) if key == "ckpt_path" else "")


def previous_checkpoint(path: Path) -> Path:
    """Where the checkpoint saved before ``path`` is kept (``training/fit.py``'s
    ``KeepPrevious``)."""
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def resume_hint(path: Path) -> str:
    """What to do when the checkpoint ``ckpt_path`` names is damaged: resume from the
    previous one where it is kept, else start again."""
    prev = previous_checkpoint(path)
    if prev.is_file():
        return f"resume from the previous one, kept for this: ckpt_path={prev}"
    return "start the run again without ckpt_path"


def check_checkpoint_file(path: Path, hint: str = "") -> None:
    """Refuse, in :func:`damaged`'s line, a file torch surely cannot load; let pass every
    file it may load (the load itself finds the rest)."""
    problem = unloadable(path)
    if problem is not None:
        raise damaged(path, problem, hint)


def unloadable(path: Path) -> str | None:
    """Why torch cannot load the file at ``path``, or None where it may."""
    try:
        with path.open("rb") as f:
            head = f.read(LEGACY_HEAD)
            if not head:
                return "an empty file"
            if head.startswith(ZIP_MAGIC):
                return _zip_problem(f, os.fstat(f.fileno()).st_size)
    except OSError as e:
        return e.strerror or type(e).__name__
    if _legacy_pickle(head) or _tar(path):
        return None
    return "neither a zip archive of torch.save nor its legacy format"


def _zip_problem(f: BinaryIO, size: int) -> str | None:
    """A zip archive of torch.save: its directory (at the end of the file: lost when the
    file is cut short) names ``data.pkl`` and entries that lie within the file."""
    try:
        with zipfile.ZipFile(f) as archive:
            entries = archive.infolist()
    except zipfile.BadZipFile as e:
        if "not a zip file" in str(e):  # no end-of-directory record
            return "the zip directory at its end is missing"
        return f"its zip directory cannot be read: {str(e)[:80]}"
    except (OSError, ValueError, EOFError) as e:
        return f"its zip directory cannot be read: {str(e)[:80] or type(e).__name__}"
    if not any(e.filename.split("/")[-1] == "data.pkl" for e in entries):
        return "a zip archive without the data.pkl of torch.save"
    beyond = next((e for e in entries if e.header_offset + e.compress_size > size), None)
    if beyond is not None:
        return f"{beyond.filename} ends beyond the end of the file"
    return None


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"{module}.{name}")


def _legacy_pickle(head: bytes) -> bool:
    """The file starts as torch's legacy format does: a pickle of its magic number (read
    from the bytes in hand, refusing any global)."""
    try:
        return _NoGlobals(io.BytesIO(head)).load() == LEGACY_MAGIC
    except Exception:  # any byte string: anything the unpickler raises means "not that"
        return False


def _tar(path: Path) -> bool:
    """A tar archive: torch's oldest format (as ``torch.load`` opens it)."""
    try:
        with tarfile.open(path, mode="r:"):
            return True
    except (tarfile.TarError, OSError, ValueError):
        return False
