"""Downloads and archives, safely: a file fetched with resume over http(s) (or a
``file://`` URL; refused in one line when offline), its size and checksums verified, and an
archive (tar of any compression, or zip) extracted into a temporary folder beside its
destination, refusing absolute paths, ``..`` and links. ``data/prepare.py`` uses them to
put datasets on disk."""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from imagenet_multilabel.core.errors import DataError

LOOPBACK = ("localhost", "127.0.0.1", "::1")


# --- download ------------------------------------------------------------------------------


def _offline() -> bool:
    return any(
        os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
        for v in ("HF_HUB_OFFLINE", "IMAGENET_ML_OFFLINE")
    )


def _opener(url: str) -> urllib.request.OpenerDirector:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme in ("http", "https") and parsed.hostname not in LOOPBACK and _offline():
        raise DataError(
            f"offline (HF_HUB_OFFLINE is set): cannot download {url}; unset it, or download "
            "the file elsewhere and pass --archive FILE"
        )
    if parsed.scheme not in ("http", "https", "file"):
        raise DataError(f"cannot download {url}: only http(s):// and file:// URLs are supported")
    if parsed.hostname in LOOPBACK:
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener()


def digests_of(path: Path, algorithms: tuple[str, ...], chunk: int = 1 << 20) -> dict[str, str]:
    """Hex digests of ``path`` for each of ``algorithms`` (hashlib names), in one read."""
    hashes = {a: hashlib.new(a) for a in algorithms}
    with path.open("rb") as f:
        while block := f.read(chunk):
            for h in hashes.values():
                h.update(block)
    return {a: h.hexdigest() for a, h in hashes.items()}


def verify(
    path: Path,
    size: int | None = None,
    sha256: str | None = None,
    md5: str | None = None,
    what: str | None = None,
) -> None:
    """Check a file's size and digests (those given); a one-line DataError names the
    first mismatch."""
    what = what or str(path)
    got = path.stat().st_size
    if size is not None and got != size:
        raise DataError(f"{what} has {got} bytes, expected {size}")
    expected = {a: v.lower() for a, v in (("sha256", sha256), ("md5", md5)) if v}
    if expected:
        for algorithm, digest in digests_of(path, tuple(expected)).items():
            if digest != expected[algorithm]:
                name = "SHA-256" if algorithm == "sha256" else "MD5"
                raise DataError(f"{name} of {what} is {digest}, expected {expected[algorithm]}")


def _is_verified(path: Path, size: int | None, sha256: str | None, md5: str | None) -> bool:
    try:
        verify(path, size, sha256, md5)
    except DataError:
        return False
    return True


def _fetch(url: str, part: Path, timeout: float, chunk: int) -> None:
    """Append the rest of ``url`` to ``part`` (HTTP Range), or rewrite it if not resumable."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "imagenet-multilabel"})
    if offset and not url.startswith("file:"):
        request.add_header("Range", f"bytes={offset}-")
    try:
        with _opener(url).open(request, timeout=timeout) as response:
            status = getattr(response, "status", None) or 200
            mode = "ab" if status == 206 else "wb"
            with part.open(mode) as f:
                while block := response.read(chunk):
                    f.write(block)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # nothing left to send: the part file is whole
            return
        raise DataError(f"cannot download {url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        reason = getattr(e, "reason", None) or e
        resume = f" to resume from {part.name}" if part.exists() and part.stat().st_size else ""
        raise DataError(
            f"download of {url} failed ({reason}); check the network and rerun{resume}"
        ) from None


def download(
    url: str,
    dest: str | Path,
    size: int | None = None,
    sha256: str | None = None,
    timeout: float = 15.0,
    chunk: int = 1 << 20,
    md5: str | None = None,
) -> Path:
    """Download ``url`` to ``dest`` via ``dest.part``, resuming an interrupted download.

    Args:
        url: ``http(s)://`` or ``file://`` URL.
        dest: final file; written only once complete and verified.
        size: expected size in bytes, or None.
        sha256: expected SHA-256 hex digest, or None.
        timeout: seconds to wait for the server (connection and each read).
        md5: expected MD5 hex digest, or None (where only MD5 is published).

    Raises:
        DataError: offline, unreachable, interrupted (the part file is kept for resuming),
            or wrong size / checksum (the part file is removed).
    """
    dest = Path(dest)
    if dest.is_file() and _is_verified(dest, size, sha256, md5):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if size is not None and part.exists() and part.stat().st_size > size:
        part.unlink()
    if size is None or not part.exists() or part.stat().st_size < size:
        _fetch(url, part, timeout, chunk)
    got = part.stat().st_size
    if size is not None and got < size:
        raise DataError(
            f"download of {url} stopped at {got} of {size} bytes; rerun to resume from {part.name}"
        )
    if size is not None and got != size:
        part.unlink()
        raise DataError(f"{url} has {got} bytes, expected {size}; the file was removed, rerun")
    try:
        verify(part, sha256=sha256, md5=md5, what=url)
    except DataError as e:
        part.unlink()
        raise DataError(
            f"{e}; the corrupt download was removed, rerun to download it again"
        ) from None
    os.replace(part, dest)
    return dest


# --- extraction ----------------------------------------------------------------------------


def _safe_members(tar: tarfile.TarFile, archive: Path) -> list[tarfile.TarInfo]:
    members = []
    for member in tar.getmembers():
        _check_member_path(member.name, archive)
        if not (member.isfile() or member.isdir()):
            raise DataError(
                f"{archive} has a link or special file {member.name!r}; refusing to extract"
            )
        members.append(member)
    return members


def _check_member_path(name: str, archive: Path) -> None:
    parts = Path(name).parts
    if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
        raise DataError(f"{archive} has an unsafe member path {name!r}; refusing to extract")


def _safe_zip_members(zf: zipfile.ZipFile, archive: Path) -> list[str]:
    names = []
    for info in zf.infolist():
        _check_member_path(info.filename, archive)
        kind = stat.S_IFMT(info.external_attr >> 16)  # 0 where only permissions are stored
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise DataError(
                f"{archive} has a link or special file {info.filename!r}; refusing to extract"
            )
        names.append(info.filename)
    return names


def _unpack(archive: Path, dest: Path) -> None:
    """Extract a tar (any compression) or zip archive into ``dest``, refusing absolute
    paths, ``..`` and links."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(dest, members=_safe_zip_members(zf, archive))
            return
        with tarfile.open(archive, "r:*") as tar:
            members = _safe_members(tar, archive)
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, members=members, filter="data")
            else:  # pragma: no cover - Python without extraction filters
                tar.extractall(dest, members=members)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as e:
        raise DataError(f"cannot extract {archive} ({e}); delete it, download again") from None


@contextmanager
def unpacked(archive: Path, beside: Path) -> Iterator[Path]:
    """A temporary folder in ``beside`` (so that renames out of it are atomic) holding
    the extracted archive; removed afterwards with whatever is left in it."""
    beside.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{archive.name}.", dir=beside))
    try:
        _unpack(archive, tmp)
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
