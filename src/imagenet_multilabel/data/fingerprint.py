"""What a run read, in a few bytes: the fingerprint of a dataset's files and label files.

A sweep job's identity (sweeps/planning.py) and a feature cache's key compare fingerprints, so
that results of other data are never taken for this data's: photos added, removed or
replaced under the same names, or a label file edited, change the fingerprint.

Cheap by design: one ``stat`` per image (its relative name, size and modification time in
nanoseconds, hashed together), never the images' bytes; label files (small) are hashed
whole (sha256). A file replaced by one of the same name, size and modification time is not
seen (copy tools keep times only when asked to).

The image ids (the dataset's file list, relative paths) are also hashed alone, sorted
(``ids_sha256``): the hash that every result's metrics.json repeats for the images it
scored (:func:`image_set`), so that a result proves which images it counted.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

# the keys that say what was read; "read" (when) is not compared
COMPARED = ("num_files", "bytes", "files_sha256", "labels")


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def listing(root: Path, files: Sequence[str]) -> tuple[str, int, int]:
    """(sha256 of the name/size/mtime lines, total bytes, newest mtime in ns); a file that
    cannot be read counts with size -1."""
    digest = hashlib.sha256()
    total, newest = 0, 0
    for name in files:
        try:
            st = os.stat(root / name)
            size, mtime = st.st_size, st.st_mtime_ns
        except OSError:
            size, mtime = -1, 0
        total += max(size, 0)
        newest = max(newest, mtime)
        digest.update(f"{name}\t{size}\t{mtime}\n".encode())
    return digest.hexdigest(), total, newest


def ids_sha256(ids: Iterable[str]) -> str:
    """sha256 of a set of image ids: the distinct ids, sorted, one per line."""
    digest = hashlib.sha256()
    for name in sorted(set(ids)):
        digest.update(f"{name}\n".encode())
    return digest.hexdigest()


def image_set(ids: Iterable[str]) -> dict[str, Any]:
    """What a result counted, for its metrics.json: ``num_distinct_images`` and
    ``images_sha256`` (:func:`ids_sha256`) of the ids of the images scored."""
    distinct = set(ids)
    return {"num_distinct_images": len(distinct), "images_sha256": ids_sha256(distinct)}


IMAGE_SET_KEYS = ("num_distinct_images", "images_sha256")


def _iso(ns: int) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(ns / 1e9)) if ns else None


def fingerprint(
    root: str | Path, files: Sequence[str], label_files: Iterable[str | Path] = ()
) -> dict[str, Any]:
    """The fingerprint of the images ``root/<files>`` and the ``label_files``:
    ``num_files``, ``bytes``, ``files_sha256`` (names, sizes, modification times),
    ``ids_sha256`` (the names alone: :func:`ids_sha256`), ``labels`` (path -> sha256, or
    null for a path that is not a file), ``newest`` (the newest image's modification time)
    and ``read`` (when the fingerprint was taken: when the run read its data). Two runs
    read the same data when :func:`same_data` says so."""
    files_sha256, total, newest = listing(Path(root), files)
    labels = {}
    for path in label_files:
        path = Path(path).expanduser()
        labels[str(path)] = file_sha256(path) if path.is_file() else None
    return {
        "num_files": len(files),
        "bytes": total,
        "files_sha256": files_sha256,
        "ids_sha256": ids_sha256(files),
        "labels": labels,
        "newest": _iso(newest),
        "read": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def dataset_fingerprint(dataset: Any, label_files: Iterable[str | Path] = ()) -> dict[str, Any]:
    """:func:`fingerprint` of the image files a dataset reads: its own ``root`` / ``files``,
    or those of its ``base`` for datasets made from another one (composites); ``ids_sha256``
    is always of the dataset's own ``files`` (the ids its predictions and results name)."""
    source = dataset
    while not _reads_own_files(source) and getattr(source, "base", None) is not None:
        source = source.base
    out = fingerprint(source.root, source.files, label_files)
    out["ids_sha256"] = ids_sha256(dataset.files)
    return out


def _reads_own_files(dataset: Any) -> bool:
    files = getattr(dataset, "files", None)
    return bool(files) and (Path(dataset.root) / files[0]).is_file()


def same_data(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Whether two fingerprints describe the same files (``read`` aside); a missing one
    (a run of an older version) is not the same."""
    if not a or not b:
        return False
    return all(a.get(k) == b.get(k) for k in COMPARED)


def changes(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> str:
    """What differs between an old fingerprint ``a`` and a new one ``b``, in words."""
    if not a:
        return "the results record no data fingerprint"
    out = []
    if a.get("num_files") != b.get("num_files"):
        out.append(f"{a.get('num_files')} -> {b.get('num_files')} images")
    elif a.get("files_sha256") != b.get("files_sha256"):
        out.append("images replaced or modified")
    if a.get("labels") != b.get("labels"):
        out.append("label file changed")
    return ", ".join(out) or "the data changed"
