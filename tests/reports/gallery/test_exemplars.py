"""Exemplars: which photo of a class is shown beside a prediction of it (never the card's
own photo), from a run's images or a folder of wnid-named files or folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from imagenet_multilabel.core.classes import wnid_to_index
from imagenet_multilabel.core.errors import DataError
from imagenet_multilabel.data.datasets.folders import DEMO_ROOT
from imagenet_multilabel.reports.images.exemplars import (
    ExemplarPool,
    pick_exemplars,
    write_exemplars,
)
from tests.helpers import class_of, demo_photos

TENCH = wnid_to_index()["n01440764"]


def photo(i: int) -> Path:
    return DEMO_ROOT / demo_photos()[i]


def resaved(source: Path, target: Path, quality: int) -> Path:
    """The same picture in other bytes (a resized or re-encoded copy)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as im:
        im.convert("RGB").save(target, "JPEG", quality=quality)
    return target


def test_run_pool_never_picks_the_cards_own_photo(tmp_path: Path) -> None:
    a, b = photo(0), resaved(photo(0), tmp_path / "other_tench.JPEG", 60)
    pool = ExemplarPool(seed=0)
    pool.add([str(a), str(b)], [TENCH, TENCH])  # default locate: the file as a path
    assert pool.classes == {TENCH}
    assert pick_exemplars(pool, [TENCH], avoid=[a]) == {TENCH: b}
    assert pick_exemplars(pool, [TENCH], avoid=[b]) == {TENCH: a}
    assert pick_exemplars(pool, [TENCH]) in ({TENCH: a}, {TENCH: b})
    assert pick_exemplars(pool, [TENCH], avoid=[a, b]) == {}

    # the card's photo under another path: a link, a copy with the same name, the same bytes
    link = tmp_path / "links" / "x.JPEG"
    link.parent.mkdir()
    link.symlink_to(b)
    renamed = tmp_path / "renamed" / "ILSVRC2012_val_00000001.JPEG"
    renamed.parent.mkdir()
    shutil.copyfile(b, renamed)
    same_name = resaved(b, tmp_path / "smaller" / b.name, 40)
    for card in (link, renamed, same_name):
        assert pick_exemplars(pool, [TENCH], avoid=[card]) == {TENCH: a}, card


def test_a_class_whose_only_photo_is_the_card_shows_none() -> None:
    files = demo_photos()[:10]
    pool = ExemplarPool()
    pool.add(files, [class_of(f) for f in files], lambda f: DEMO_ROOT / f)
    own = photo(3)
    classes = [class_of(f) for f in files[2:5]] + [TENCH + 1]  # + a class with no photo
    chosen = pick_exemplars(pool, classes, avoid=[own])
    assert chosen == {class_of(files[2]): photo(2), class_of(files[4]): photo(4)}


def test_missing_photos_are_skipped() -> None:
    pool = ExemplarPool()
    files = ["gone/a.JPEG", demo_photos()[0], "gone/b.JPEG"]
    pool.add(files, [TENCH] * 3, lambda f: DEMO_ROOT / f if (DEMO_ROOT / f).is_file() else None)
    assert pick_exemplars(pool, [TENCH]) == {TENCH: photo(0)}
    assert pick_exemplars(pool, [TENCH], avoid=[photo(0)]) == {}


def test_the_choice_is_seeded_and_independent_of_order() -> None:
    files = demo_photos()[:40]
    # two "photos" per class: every demo photo under its class and under the next one's
    classes = [class_of(f) for f in files]
    pairs = list(zip(files, classes, strict=True)) + list(zip(files[1:], classes[:-1], strict=True))

    def chosen(seed: int, reverse: bool) -> dict[int, Path]:
        pool = ExemplarPool(seed)
        items = pairs[::-1] if reverse else pairs
        pool.add([f for f, _ in items], [c for _, c in items], lambda f: DEMO_ROOT / f)
        return pick_exemplars(pool, classes)

    assert chosen(0, False) == chosen(0, True)
    assert chosen(0, False) != chosen(1, False)
    assert len(chosen(0, False)) == len(set(classes))


def test_folder_of_wnid_named_files_and_folders(tmp_path: Path) -> None:
    root = tmp_path / "exemplars"
    (root / "n01443537").mkdir(parents=True)  # goldfish: a class folder (train layout)
    shutil.copy(photo(1), root / "n01443537" / "any_name.jpg")
    shutil.copy(photo(1), root / "n01443537" / ".hidden.jpg")
    (root / "n01443537" / "notes.txt").write_text("x")
    shutil.copy(photo(0), root / "n01440764_tench.JPEG")  # a wnid-named file
    shutil.copy(photo(2), root / "n01484850.png")  # named by the wnid alone
    shutil.copy(photo(3), root / "holiday.jpg")  # no wnid: not an exemplar
    (root / "n01491361_readme.txt").write_text("not an image")
    (root / "misc").mkdir()
    shutil.copy(photo(4), root / "misc" / "n01494475_x.JPEG")  # not a wnid folder
    pool = ExemplarPool.from_folder(root)
    goldfish, shark = wnid_to_index()["n01443537"], wnid_to_index()["n01484850"]
    assert pool.classes == {TENCH, goldfish, shark}
    assert pick_exemplars(pool, [TENCH, goldfish, shark, TENCH + 5]) == {
        TENCH: root / "n01440764_tench.JPEG",
        goldfish: root / "n01443537" / "any_name.jpg",
        shark: root / "n01484850.png",
    }
    # the run's own photo of a tench (same file name) is never its exemplar
    assert pick_exemplars(pool, [TENCH], avoid=[root / "elsewhere" / "n01440764_tench.JPEG"]) == {}


def test_bad_folders_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        ExemplarPool.from_folder(tmp_path / "nowhere")
    file = tmp_path / "a.jpg"
    shutil.copy(photo(0), file)
    with pytest.raises(DataError, match="is a file"):
        ExemplarPool.from_folder(file)
    (tmp_path / "photos").mkdir()
    shutil.copy(photo(0), tmp_path / "photos" / "tench.jpg")
    with pytest.raises(DataError, match="no wnid-named images") as e:
        ExemplarPool.from_folder(tmp_path / "photos")
    assert "\n" not in str(e.value)


def test_write_exemplars_once_per_photo(tmp_path: Path) -> None:
    sources = [photo(0), photo(1), photo(0)]
    names = write_exemplars(sources, tmp_path / "ex", size=64)
    assert set(names) == {photo(0), photo(1)}
    written = sorted((tmp_path / "ex").iterdir())
    assert [p.name for p in written] == sorted(names.values())
    for p in written:
        with Image.open(p) as im:
            assert max(im.size) == 64
        assert p.stat().st_size < 6_000
