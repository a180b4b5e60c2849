"""Download (resume, checksums, offline) and atomic extraction, against a local server."""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from imagenet_multilabel.commands.prepare import main
from imagenet_multilabel.core.errors import DataError
from imagenet_multilabel.data import prepare as prep
from imagenet_multilabel.data.datasets.folders import ImageNetV2Dataset
from imagenet_multilabel.data.download import download
from imagenet_multilabel.data.prepare import extract, is_complete, prepare_imagenetv2

FOLDER = "imagenetv2-matched-frequency-format-val"
CLASSES = [0, 2, 10, 100]


def _tar_gz(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buf.getvalue()


@pytest.fixture
def v2_archive(tmp_path: Path, put_photo) -> bytes:
    """A small ImageNetV2-layout archive of real photos (4 classes, 1 image each)."""
    members = {}
    for c in CLASSES:
        photo = put_photo(c, tmp_path / "photos" / f"{c}.jpeg")
        members[f"{FOLDER}/{c}/{c:040x}.jpeg"] = photo.read_bytes()
    return _tar_gz(members)


class _Server:
    """Serves ``payload`` at /data.tar.gz with HTTP Range; can cut the first response short."""

    def __init__(self) -> None:
        self.payload = b""
        self.cut_after: int | None = None
        self.ranges: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                rng = self.headers.get("Range")
                outer.ranges.append(rng)
                start = int(rng.split("=")[1].rstrip("-")) if rng else 0
                body = outer.payload[start:]
                self.send_response(206 if rng else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.cut_after is not None:
                    body, outer.cut_after = body[: outer.cut_after], None
                    self.wfile.write(body)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/data.tar.gz"


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()
    thread.join(timeout=5)


def test_download_resumes_after_interruption(server: _Server, tmp_path: Path) -> None:
    server.payload = bytes(range(256)) * 400
    sha = hashlib.sha256(server.payload).hexdigest()
    dest = tmp_path / "a.tar.gz"
    server.cut_after = 30_000
    with pytest.raises(DataError, match=r"rerun to resume from a.tar.gz.part"):
        download(server.url, dest, size=len(server.payload), sha256=sha, timeout=5, chunk=4096)
    part = tmp_path / "a.tar.gz.part"
    assert part.stat().st_size == 30_000 and not dest.exists()
    download(server.url, dest, size=len(server.payload), sha256=sha, timeout=5)
    assert dest.read_bytes() == server.payload and not part.exists()
    assert server.ranges == [None, "bytes=30000-"]
    # a complete, verified file is not fetched again
    download(server.url, dest, size=len(server.payload), sha256=sha, timeout=5)
    assert len(server.ranges) == 2


def test_download_checksum_mismatch_removes_the_file(server: _Server, tmp_path: Path) -> None:
    server.payload = b"x" * 1000
    with pytest.raises(DataError, match=r"SHA-256 of .* expected 0000"):
        download(server.url, tmp_path / "a.tar.gz", size=1000, sha256="0" * 64, timeout=5)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DataError, match=r"has 1000 bytes, expected 999"):
        download(server.url, tmp_path / "a.tar.gz", size=999, timeout=5)


def test_download_fails_fast_offline_or_unreachable(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match=r"offline \(HF_HUB_OFFLINE is set\)"):
        download("https://huggingface.co/x.tar.gz", tmp_path / "x.tar.gz")
    srv = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = srv.server_address[1]
    srv.server_close()  # nothing listens on that port now
    with pytest.raises(DataError, match=r"download of .* failed"):
        download(f"http://127.0.0.1:{port}/x.tar.gz", tmp_path / "x.tar.gz", timeout=2)
    with pytest.raises(DataError, match=r"only http\(s\):// and file://"):
        download("ftp://example.org/x", tmp_path / "x")


def test_extract_is_atomic_and_checked(v2_archive: bytes, tmp_path: Path) -> None:
    archive = tmp_path / "v2.tar.gz"
    archive.write_bytes(v2_archive)
    target = tmp_path / "out" / FOLDER
    with pytest.raises(DataError, match=r"holds 4 class folders and 4 images, expected 4 and 5"):
        extract(archive, target, FOLDER, num_classes=4, num_images=5)
    assert not target.exists() and list((tmp_path / "out").iterdir()) == []  # no leftovers
    assert extract(archive, target, FOLDER, num_classes=4, num_images=4) == target
    assert is_complete(target)
    ds = ImageNetV2Dataset(target.parent)
    assert ds.targets == CLASSES
    target.joinpath(".complete").unlink()
    with pytest.raises(DataError, match=r"not a complete extraction"):
        extract(archive, target, FOLDER, num_classes=4, num_images=4)


@pytest.mark.parametrize(
    ("members", "links"),
    [({"../evil.txt": b"x"}, None), ({"/tmp/evil.txt": b"x"}, None), ({}, {"0/l": "/etc"})],
)
def test_extract_refuses_unsafe_members(tmp_path: Path, members, links) -> None:
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(_tar_gz({"0/a.jpeg": b"x", **members}, links))
    with pytest.raises(DataError, match=r"refusing to extract"):
        extract(archive, tmp_path / "out" / "ds", num_classes=1, num_images=1)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "ds").exists()


def test_prepare_imagenetv2_end_to_end(
    server: _Server, v2_archive: bytes, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(
        prep,
        "IMAGENETV2_ARCHIVES",
        {"matched-frequency": prep.Archive("unused", None, None, FOLDER, 4, 4)},
    )
    server.payload = v2_archive
    root = tmp_path / "data"
    assert main(["imagenetv2", "--root", str(root), "--url", server.url]) == 0
    assert is_complete(root / FOLDER) and sorted(p.name for p in root.iterdir()) == [FOLDER]
    # already complete: nothing is downloaded again
    assert prepare_imagenetv2(root, url=server.url) == root / FOLDER
    assert len(server.ranges) == 1
    # file:// URLs work too
    archive = tmp_path / "v2.tar.gz"
    archive.write_bytes(v2_archive)
    other = tmp_path / "other"
    assert prepare_imagenetv2(other, url=archive.as_uri(), keep_archive=True).is_dir()
    assert (other / "v2.tar.gz").is_file()


def test_official_archives_are_pinned() -> None:
    spec = prep.IMAGENETV2_ARCHIVES["matched-frequency"]
    assert spec.url.endswith("/imagenetv2-matched-frequency.tar.gz")
    assert spec.size == 1_264_079_360 and len(spec.sha256) == 64
    assert set(prep.IMAGENETV2_ARCHIVES) == {"matched-frequency", "threshold0.7", "top-images"}


def test_prepare_imagenet_cli(flat_val: Path, tmp_path: Path, capsys, val_subset) -> None:
    assert main(["imagenet"]) == 0
    assert "image-net.org" in capsys.readouterr().out
    assert main(["imagenet", "--root", str(tmp_path / "missing")]) == 2
    assert "error: no ILSVRC2012 val folder" in capsys.readouterr().err
    rows = [f"ILSVRC2012_val_{n:08d}.JPEG {c}" for n, c in val_subset.items()]
    (flat_val / "val_labels.txt").write_text("\n".join(rows))
    assert main(["imagenet", "--root", str(flat_val)]) == 0
    out = capsys.readouterr().out
    assert "flat files, 5 images, 5 classes (not the full" in out


def test_prepare_root_that_cannot_be_written(tmp_path: Path, capsys) -> None:
    """--root under a file was a NotADirectoryError traceback."""
    archive = tmp_path / "v2.tar.gz"
    archive.write_bytes(b"any")
    (tmp_path / "file").write_text("x")
    root = tmp_path / "file" / "v2"
    assert main(["imagenetv2", "--root", str(root), "--archive", str(archive)]) == 2
    assert f"error: cannot write to {root} (Not a directory): choose another --root" in (
        capsys.readouterr().err
    )


def test_prepare_imagenet_root_that_is_a_file(tmp_path: Path, capsys) -> None:
    (tmp_path / "val.tar").write_bytes(b"x")
    assert main(["imagenet", "--root", str(tmp_path / "val.tar")]) == 2
    assert "is a file, not a folder: pass --root /path/to/val" in capsys.readouterr().err
