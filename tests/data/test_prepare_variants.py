"""prepare for ImageNet-A/-R/-Sketch/-C, on small local archives of real photos (the
official archives are gigabytes and there is no network here): checksums, zip and tar,
atomic extraction, the CLI's messages."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from imagenet_multilabel.commands.prepare import main
from imagenet_multilabel.core.errors import DataError
from imagenet_multilabel.data import prepare as prep
from imagenet_multilabel.data.datasets.folders import (
    DEMO_ROOT,
    ImageNetADataset,
    ImageNetSketchDataset,
)
from imagenet_multilabel.data.datasets.imagenet_c import RELEASED, imagenet_c
from imagenet_multilabel.data.prepare import (
    Archive,
    checksum_note,
    is_complete,
    prepare_archive,
    prepare_imagenet_c,
)
from tests.data.arrange import demo_arrangement


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zip(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16) | 0
            zf.writestr(info, target)
    return buf.getvalue()


def _a_members(tmp_path: Path) -> dict[str, bytes]:
    """imagenet-a/<wnid>/<photo> for the 23 demo photos of ImageNet-A classes, + README."""
    root = demo_arrangement(tmp_path / "arranged")
    members = {"imagenet-a/README.txt": b"ImageNet-A\n"}
    for photo in sorted(root.glob("*/*.JPEG")):
        members[f"imagenet-a/{photo.parent.name}/{photo.name}"] = photo.read_bytes()
    return members


def _spec(data: bytes, folder: str, classes: int, images: int | None, **kw) -> Archive:
    return Archive(
        kw.pop("url", "unused"),
        len(data),
        hashlib.sha256(data).hexdigest(),
        folder,
        classes,
        images,
        layout="wnid",
        **kw,
    )


def test_imagenet_a_from_a_local_archive(tmp_path: Path, monkeypatch, capsys) -> None:
    data = _tar(_a_members(tmp_path))
    archive = tmp_path / "imagenet-a.tar"
    archive.write_bytes(data)
    monkeypatch.setitem(prep.ARCHIVES, "imagenet_a", _spec(data, "imagenet-a", 23, 23))
    root = tmp_path / "data"
    assert main(["imagenet_a", "--root", str(root), "--archive", str(archive)]) == 0
    out = capsys.readouterr().out
    assert "ImageNet-A ready (verified: size and SHA-256)" in out
    assert f"data=imagenet_a data.root={root / 'imagenet-a'}" in out
    assert is_complete(root / "imagenet-a") and archive.is_file()  # a local archive is kept
    ds = ImageNetADataset(root)
    assert len(ds) == 23 and len(ds.class_subset) == 23
    # a file that is not the published archive is refused before anything is extracted
    other = tmp_path / "other.tar"
    other.write_bytes(data[:1000] + bytes([data[1000] ^ 1]) + data[1001:])
    assert main(["imagenet_a", "--root", str(tmp_path / "x"), "--archive", str(other)]) == 2
    err = capsys.readouterr().err
    assert "error: SHA-256 of" in err and "not the published archive" in err
    assert not (tmp_path / "x").exists()


def test_imagenet_r_download_is_verified(tmp_path: Path) -> None:
    """The official URL (here a file:// one) is downloaded, checked and removed."""
    members = {
        k.replace("imagenet-a/", "imagenet-r/"): v
        for k, v in _a_members(tmp_path).items()
        if not k.endswith("README.txt")
    }
    data = _tar(members)
    source = tmp_path / "served" / "imagenet-r.tar"
    source.parent.mkdir()
    source.write_bytes(data)
    spec = _spec(data, "imagenet-r", 23, 23, url=source.as_uri())
    target = prepare_archive(spec, tmp_path / "data")
    assert is_complete(target) and [p.name for p in target.parent.iterdir()] == ["imagenet-r"]
    assert checksum_note(spec) == "verified: size and SHA-256"
    assert checksum_note(spec, url=source.as_uri()).startswith("not verified")
    bad = Archive(source.as_uri(), len(data), "0" * 64, "imagenet-r", 23, 23, layout="wnid")
    with pytest.raises(DataError, match=r"SHA-256 of .* expected 0000.*download was removed"):
        prepare_archive(bad, tmp_path / "other")
    assert list((tmp_path / "other").iterdir()) == []


def test_sketch_zip_extracts(tmp_path: Path) -> None:
    photos = sorted(DEMO_ROOT.glob("*.JPEG"))
    members = {f"sketch/{p.name.split('_')[0]}/{p.name}": p.read_bytes() for p in photos}
    data = _zip(members)
    archive = tmp_path / "ImageNet-Sketch.zip"
    archive.write_bytes(data)
    spec = _spec(data, "sketch", 100, None)
    assert prepare_archive(spec, tmp_path / "data", archive_file=archive).name == "sketch"
    ds = ImageNetSketchDataset(tmp_path / "data")
    assert len(ds) == 100 and ds[0]["image"].mode == "RGB"
    wrong = _spec(data, "sketch", 1000, None)
    with pytest.raises(DataError, match=r"holds 100 class folders and 100 images, expected 1000"):
        prepare_archive(wrong, tmp_path / "again", archive_file=archive)
    assert [p.name for p in (tmp_path / "again").iterdir()] == []  # nothing left behind


@pytest.mark.parametrize(
    ("members", "links"),
    [({"../evil.JPEG": b"x"}, None), ({"/tmp/evil.JPEG": b"x"}, None), ({}, {"s/l": "/etc"})],
)
def test_zip_refuses_unsafe_members(tmp_path: Path, members, links) -> None:
    archive = tmp_path / "bad.zip"
    archive.write_bytes(_zip({"s/n01440764/a.JPEG": b"x", **members}, links))
    with pytest.raises(DataError, match=r"refusing to extract"):
        prep.extract(archive, tmp_path / "out" / "s", "s", 1, 1, layout="wnid")
    assert not (tmp_path / "evil.JPEG").exists() and not (tmp_path / "out" / "s").exists()


def _c_archive(severities=range(1, 6)) -> bytes:
    """The weather archive's layout: <corruption>/<severity>/<wnid>/ILSVRC2012_val_*.JPEG,
    two demo photos per severity."""
    photos = sorted(DEMO_ROOT.glob("*.JPEG"))[:2]
    members = {}
    for c in RELEASED["weather"]:
        for s in severities:
            for n, p in enumerate(photos, start=1):
                members[f"{c}/{s}/{p.name[:9]}/ILSVRC2012_val_{n:08d}.JPEG"] = p.read_bytes()
    return _tar(members)


def test_imagenet_c_archive_by_md5(tmp_path: Path, monkeypatch, capsys) -> None:
    data = _c_archive()
    archive = tmp_path / "weather.tar"
    archive.write_bytes(data)
    md5 = hashlib.md5(data).hexdigest()
    spec = Archive("unused", None, None, "", 2, None, md5, "wnid")
    monkeypatch.setitem(prep.IMAGENET_C_ARCHIVES, "weather", spec)
    root = tmp_path / "ImageNet-C"
    args = ["imagenet_c", "--root", str(root), "--set", "weather", "--archive", str(archive)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "ImageNet-C weather ready (verified: MD5): snow, frost, fog, brightness" in out
    assert all(is_complete(root / c) for c in RELEASED["weather"])
    ds = imagenet_c(root=root, corruption="frost", severity=5, prepared=True)
    assert len(ds) == 2 and ds.default_labels == "real"
    # complete corruptions are not extracted again
    assert prepare_imagenet_c(root, ("weather",), archive_file=tmp_path / "missing.tar") == root

    assert main(["imagenet_c", "--root", str(root), "--archive", str(archive)]) == 2
    assert "take one ImageNet-C archive: add --set NAME" in capsys.readouterr().err
    monkeypatch.setitem(prep.IMAGENET_C_ARCHIVES, "weather", replace(spec, md5="0" * 32))
    args[2] = str(tmp_path / "other")
    assert main(args) == 2
    assert "MD5 of" in capsys.readouterr().err and not (tmp_path / "other").exists()


def test_imagenet_c_archive_missing_a_severity(tmp_path: Path) -> None:
    archive = tmp_path / "weather.tar"
    archive.write_bytes(_c_archive(severities=(1, 2, 3, 5)))
    with pytest.raises(DataError, match=r"has no snow/4/: delete it, download again"):
        prep.extract_imagenet_c(archive, tmp_path / "C", RELEASED["weather"], num_classes=2)
    assert [p.name for p in (tmp_path / "C").iterdir()] == []  # no partial corruption


def test_official_variant_archives_are_pinned() -> None:
    a, r, sketch = (prep.ARCHIVES[k] for k in ("imagenet_a", "imagenet_r", "imagenet_sketch"))
    assert a.url.endswith("~hendrycks/imagenet-a.tar") and a.size == 687_552_512
    assert r.url.endswith("~hendrycks/imagenet-r.tar") and r.size == 2_191_079_936
    assert sketch.url.endswith("/ImageNet-Sketch.zip") and sketch.size == 7_593_573_012
    assert all(len(x.sha256) == 64 for x in (a, r, sketch))
    assert (a.num_classes, a.num_images, r.num_classes, r.num_images) == (200, 7500, 200, 30000)
    assert set(prep.IMAGENET_C_ARCHIVES) == set(RELEASED)
    for name, spec in prep.IMAGENET_C_ARCHIVES.items():
        assert spec.url.startswith("https://zenodo.org/records/2235448/files/" + name)
        assert spec.size is None and spec.sha256 is None and len(spec.md5) == 32
        assert checksum_note(spec) == "verified: MD5"
    unpinned = Archive("u", None, None, "f")
    assert checksum_note(unpinned) == "checksum not verified: none is published for this archive"
