"""The gallery page from hand-built runs: contents, files, bounds and bad input."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from imagenet_multilabel.core.classes import class_names
from imagenet_multilabel.core.errors import DataError, UserError
from imagenet_multilabel.core.files import write_json
from imagenet_multilabel.reports.gallery.build import gallery, gallery_rows, write_gallery
from imagenet_multilabel.reports.gallery.options import gallery_options
from imagenet_multilabel.runs.rundir import write_predictions
from tests.helpers import class_of, command, write_run
from tests.reports.gallery.hand_built import (
    NUM_COMPOSITES,
    composite_dataset,
    plain_dataset,
    ring_composites,
    ring_dataset,
)


def cards(html: str) -> list[str]:
    return re.findall(r'<article class="card".*?</article>', html, flags=re.S)


def section_cards(html: str, anchor: str) -> int:
    block = re.search(rf'<section class="gsec[^"]*" id="{anchor}".*?</section>', html, re.S)
    assert block, anchor
    return len(cards(block.group(0)))


def test_page_of_a_labeled_run(labeled_run) -> None:
    run_dir, datasets = labeled_run
    page = write_gallery(run_dir)
    assert page == run_dir / "gallery" / "index.html"
    html = page.read_text()
    d = datasets["demo"]
    for key in ("right_scored_wrong", "confidently_wrong", "missed_second", "no_label"):
        assert section_cards(html, f"demo-{key}") == len(d.rows(key)), key
    assert section_cards(html, "patchml-composites") == NUM_COMPOSITES
    assert "demo-wrong_top1" not in html
    # summary band: model, label set, the metrics and two plots per labeled dataset
    assert "hand_built" in html and "label set <b>file</b>" in html
    for metric in ("top1", "real_top1", "vartopk_strict", "asma"):
        assert f'<span class="k">{metric}</span>' in html
    assert html.count("<svg") == 4
    # thumbnails: one per distinct photo, small JPEGs beside the page, all referenced
    thumbs = sorted((page.parent / "thumbs").iterdir())
    srcs = set(re.findall(r'src="thumbs/([0-9a-f]+\.jpg)"', html))
    assert srcs == {p.name for p in thumbs}
    assert all(p.stat().st_size < 30_000 for p in thumbs)
    # self-contained: no external resource, nothing fetched from a network
    assert not re.search(r"https?://|<link|<script src|@import|url\(", html)
    assert "photo not found" not in html


def test_card_shows_names_top5_and_marks(labeled_run) -> None:
    run_dir, _ = labeled_run
    html = write_gallery(run_dir).read_text()
    card = next(c for c in cards(html) if "n01641577_bullfrog.JPEG" in c)
    assert 'data-nvalid="3"' in card  # a missed_second image (index 3)
    assert "label <b>bullfrog</b>" in card
    assert card.count('<li class="ok"') == 2 and card.count('<li class="no"') == 3
    assert card.count('class="chip"') == 3
    assert re.search(
        r"valid labels ranked <span>#1 bullfrog</span>, <span>#2 \w+</span>, "
        r'<span class="far">#1000 \w+</span>',
        card,
    )


def test_page_of_a_run_without_labels(unlabeled_run) -> None:
    run_dir, _ = unlabeled_run
    html = write_gallery(run_dir).read_text()
    assert "No label set was present" in html
    assert section_cards(html, "demo-wrong_top1") == 16
    assert "demo-right_scored_wrong" not in html and "<svg" not in html
    assert 'id="f-nvalid" disabled' in html


def test_options_nodes_and_bounds(labeled_run, tmp_path) -> None:
    run_dir, _ = labeled_run
    out = tmp_path / "elsewhere"
    page = write_gallery(run_dir, {"per_section": 2, "seed": 5, "output_dir": str(out)})
    assert page == out / "index.html"
    html = page.read_text()
    # demo: 4 sections of 4 images; patchml: 3 non-empty sections (of 6, 3, 6 images)
    assert len(cards(html)) == 2 * 4 + 2 * 3
    assert "A random sample of 2 (seed 5) of its 4 images." in html
    assert gallery_options(True) == gallery_options(None) == gallery_options({})
    assert gallery_options(OmegaConf.create({"per_section": 3})).per_section == 3
    with pytest.raises(UserError, match="unknown gallery option"):
        gallery_options({"per_sectoin": 3})
    with pytest.raises(UserError, match="out of range"):
        gallery_options({"per_section": 0})
    with pytest.raises(UserError, match="must be a number"):
        gallery_options({"confident": "high"})


def test_rebuild_replaces_the_previous_gallery(labeled_run) -> None:
    run_dir, _ = labeled_run
    write_gallery(run_dir)
    stale = run_dir / "gallery" / "thumbs" / "stale.jpg"
    stale.write_bytes(b"x")
    write_gallery(run_dir, {"per_section": 1})
    assert not stale.exists()
    assert [p.name for p in run_dir.iterdir() if p.name.startswith(".")] == []
    assert oct((run_dir / "gallery").stat().st_mode & 0o777) != oct(0o700)
    (run_dir / "gallery" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="other files than a gallery"):
        write_gallery(run_dir)
    assert (run_dir / "gallery" / "notes.txt").exists()


def test_moved_photos_are_placeholders_until_image_root_finds_them(tmp_path, caplog) -> None:
    moved = tmp_path / "moved"
    datasets = {"demo": plain_dataset()}
    run_dir = write_run(tmp_path / "run", "hand_built", datasets, root=tmp_path / "old_place")
    html = write_gallery(run_dir).read_text()
    assert html.count('<div class="missing"') == len(cards(html)) > 0
    assert "photos not found" in caplog.text and "gallery.image_root" in caplog.text
    n = len(set(re.findall(r'data-index="(\d+)"', html)))
    assert f"{n} of {n} photos not found" in html  # a note on the page, too
    assert not (run_dir / "gallery" / "thumbs").exists() or not any(
        (run_dir / "gallery" / "thumbs").iterdir()
    )
    # the photos now lie flat in another folder, one unreadable
    moved.mkdir()
    from imagenet_multilabel.data.datasets.folders import DEMO_ROOT

    for name in datasets["demo"].files:
        os.symlink(DEMO_ROOT / name, moved / name)
    broken = datasets["demo"].files[1]  # a right_scored_wrong image: shown
    (moved / broken).unlink()
    (moved / broken).write_bytes(b"not a jpeg")
    html = write_gallery(run_dir, {"image_root": str(moved)}).read_text()
    assert html.count('<div class="missing"') == 1 and "photo unreadable" in html
    with pytest.raises(DataError, match="image_root"):
        write_gallery(run_dir, {"image_root": str(tmp_path / "nowhere")})


def test_bad_runs_are_one_line_errors(tmp_path, labeled_run) -> None:
    with pytest.raises(DataError, match="does not exist"):
        write_gallery(tmp_path / "nothing")
    empty = tmp_path / "no_predictions"
    write_json(empty / "metrics.json", {"demo/top1": 50.0})
    with pytest.raises(DataError, match=r"no predictions/\*\.npz"):
        write_gallery(empty)
    run_dir, _ = labeled_run
    with pytest.raises(DataError, match="has no dataset 'imagenet'"):
        write_gallery(run_dir, datasets=["imagenet"])
    odd = tmp_path / "odd"
    write_predictions(
        odd / "predictions" / "demo.npz",
        index=np.arange(2),
        files=["a.jpg", "b.jpg"],
        target=np.zeros(2),
        logits=np.zeros((2, 10)),
    )
    write_json(odd / "metrics.json", {"demo/top1": 50.0})
    with pytest.raises(DataError, match="10 classes"):
        write_gallery(odd)
    for error in (DataError, UserError):
        assert issubclass(error, UserError)


EXEMPLAR = re.compile(
    r'<img class="ex" src="(exemplars/[0-9a-f]+\.jpg)" alt="([^"]*)" title="an image of [^:]*: '
    r'([^"]+)"'
)


def test_exemplars_are_other_photos_of_the_run(tmp_path) -> None:
    """Beside each top-5 class a photo of the run whose original label (a composite's
    tile: its label) is that class; never one of the card's own photos, even where the
    same photo is an image of another dataset of the run (the composites' tiles)."""
    ring, composites = ring_dataset(), ring_composites()
    run_dir = write_run(tmp_path / "run", "hand_built", {"demo": ring, "patchml": composites})
    page = write_gallery(run_dir)
    html = page.read_text()
    names = class_names()
    shown = set()
    for card in cards(html):
        own = set(re.search(r'<div class="file"[^>]*>([^<]+)</div>', card).group(1).split("+"))
        exemplars = EXEMPLAR.findall(card)
        assert len(exemplars) == 5 - len(own)  # a composite's own classes: both its tiles'
        assert card.count('<span class="ex none"></span>') == len(own)
        for src, alt, photo in exemplars:
            assert photo not in own
            assert names[class_of(photo)] == alt  # a photo of the class it stands beside
            assert (page.parent / src).is_file()
            shown.add(src)
    written = sorted(f"exemplars/{p.name}" for p in (page.parent / "exemplars").iterdir())
    assert written == sorted(shown)
    assert len(written) == len(ring.files)  # one file per photo, however often shown

    html = write_gallery(run_dir, {"exemplars": "none"}).read_text()
    assert 'class="ex' not in html and not (page.parent / "exemplars").exists()


def test_exemplar_options_and_bad_folders(labeled_run, tmp_path) -> None:
    assert gallery_options(None).exemplars == "run" == gallery_options(True).exemplars
    for off in ("none", False, None):
        assert gallery_options({"exemplars": off}).exemplars is None
    assert gallery_options({"exemplars": str(tmp_path)}).exemplars == tmp_path
    with pytest.raises(UserError, match="exemplar_size=4 is out of range"):
        gallery_options({"exemplar_size": 4})
    run_dir, _ = labeled_run
    page = write_gallery(run_dir)
    before = page.read_bytes()
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "holiday.jpg").write_bytes(b"x")
    for bad, message in (
        (tmp_path / "nowhere", "does not exist"),
        (tmp_path / "photos" / "holiday.jpg", "is a file"),
        (tmp_path / "photos", "holds no wnid-named images"),
    ):
        with pytest.raises(DataError, match=f"gallery.exemplars=.* {message}") as e:
            write_gallery(run_dir, {"exemplars": str(bad)})
        assert "\n" not in str(e.value)
        assert page.read_bytes() == before  # nothing written


def test_gallery_rows_are_the_page_samples(labeled_run) -> None:
    run_dir, _ = labeled_run
    rows = gallery_rows(run_dir, {"per_section": 3})
    html = write_gallery(run_dir, {"per_section": 3}).read_text()
    assert len(rows) == len(cards(html))
    sections = {r["section"] for r in rows}
    assert sections >= {"Right, but scored wrong", "Composites: tiles and their labels"}
    row = rows[0]
    assert set(row) == {
        "dataset", "section", "index", "file", "image", "label", "valid", "top5",
        "confidence", "num_valid", "worst_rank",
    }  # fmt: skip
    assert Path(row["image"]).is_file() and "%" in row["top5"]
    order = [(r["dataset"], r["index"]) for r in rows]
    page_order = re.findall(r'data-dataset="(\w+)"|data-index="(\d+)"', html)
    current, from_page = None, []
    for ds, index in page_order:
        current = ds or current
        if index:
            from_page.append((current, int(index)))
    assert order == from_page


def test_bounded_page_of_a_large_run(tmp_path) -> None:
    """20,000 images: a page of bounded size in seconds (photos cycle the demo photos)."""
    from imagenet_multilabel.data.datasets.folders import DEMO_ROOT

    rng = np.random.default_rng(0)
    n = 20_000
    files = [p.name for p in sorted(DEMO_ROOT.glob("*.JPEG"))]
    logits = rng.normal(0, 2, (n, 1000)).astype(np.float32)
    valid = rng.random((n, 1000)) < 0.0015
    run_dir = tmp_path / "big"
    write_predictions(
        run_dir / "predictions" / "imagenet.npz",
        index=np.arange(n),
        files=[files[i % len(files)] for i in range(n)],
        target=rng.integers(0, 1000, n),
        logits=logits,
        valid=valid,
    )
    write_json(run_dir / "run.json", {"datasets": {"imagenet": {"root": str(DEMO_ROOT)}}})
    write_json(run_dir / "metrics.json", {"imagenet/top1": 0.1})
    started = time.perf_counter()
    page = write_gallery(run_dir, {"per_section": 20})
    seconds = time.perf_counter() - started
    html = page.read_text()
    assert len(cards(html)) <= 20 * 4
    assert len(html) < 400_000
    assert seconds < 60  # ~2 s on 2 shared cores
    # exemplars: one small JPEG per photo shown (here the 100 demo photos under random
    # labels), no more than the top-5 classes shown
    exemplars = list((page.parent / "exemplars").iterdir())
    classes = set(re.findall(r'<img class="ex" [^>]*alt="([^"]*)"', html))
    assert 0 < len(exemplars) <= len(classes) <= 5 * 20 * 4
    assert sum(p.stat().st_size for p in exemplars) < 4_000 * len(exemplars)
    folder = sum(p.stat().st_size for p in page.parent.rglob("*") if p.is_file())
    print(f"{len(exemplars)} exemplars, folder {folder:,} bytes, {seconds:.1f} s")
    assert folder < 3_000_000


def test_task_composes_from_conf(compose_cfg, labeled_run) -> None:
    run_dir, _ = labeled_run
    cfg = compose_cfg(
        f"run_dir={run_dir}", "dataset=patchml", "gallery.per_section=4", config_name="gallery"
    )
    result = gallery(cfg)
    html = (run_dir / "gallery" / "index.html").read_text()
    assert result["seconds"] > 0
    assert 'id="ds-patchml"' in html and 'id="ds-demo"' not in html
    assert len(cards(html)) == 4 + 3 + 4  # right_scored_wrong, missed_second, composites
    with pytest.raises(UserError, match="no run given"):
        gallery(compose_cfg(config_name="gallery"))


def test_evaluate_config_has_the_gallery_switch(compose_cfg) -> None:
    assert compose_cfg().gallery is False
    assert compose_cfg("gallery=true").gallery is True


@pytest.mark.slow
def test_cli_writes_the_page_and_fails_in_one_line(labeled_run, tmp_path) -> None:
    run_dir, _ = labeled_run
    proc = command("gallery", f"run_dir={run_dir}", f"hydra.run.dir={tmp_path / 'log'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (run_dir / "gallery" / "index.html").is_file()
    assert f"gallery: {run_dir / 'gallery' / 'index.html'}" in proc.stdout
    proc = command(
        "gallery", f"run_dir={tmp_path / 'missing'}", f"hydra.run.dir={tmp_path / 'log2'}"
    )
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "does not exist" in lines[0]
    proc = command(
        "gallery",
        f"run_dir={run_dir}",
        f"gallery.exemplars={tmp_path / 'no_photos'}",
        f"hydra.run.dir={tmp_path / 'log3'}",
    )
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr
    assert f"gallery.exemplars={tmp_path / 'no_photos'} does not exist" in lines[0]


def test_every_composite_class_is_read_as_composites(tmp_path) -> None:
    """The photos of a run's composites are found whatever class of composites it read:
    data/datasets/composites.py's and every subclass (train.py's training composites), as
    the gallery and propose both read them (before, a train run's photos were "not found")."""
    from imagenet_multilabel.data.datasets.composites import CompositeDataset
    from imagenet_multilabel.propose.proposals import read_proposals
    from imagenet_multilabel.propose.workflow import propose
    from imagenet_multilabel.reports.images.photos import COMPOSITE_CLASSES
    from imagenet_multilabel.training import data as training_data  # noqa: F401 (subclasses)

    def subclasses(cls: type) -> set[type]:
        return {cls}.union(*(subclasses(s) for s in cls.__subclasses__()))

    kinds = {c.__name__ for c in subclasses(CompositeDataset) if c.__module__.startswith("imag")}
    assert kinds == set(COMPOSITE_CLASSES) and len(kinds) >= 2
    for kind in sorted(kinds):
        run_dir = write_run(
            tmp_path / kind,
            "hand_built",
            {"train_recombined": composite_dataset()},
            records={"train_recombined": {"class": kind}},
        )
        html = write_gallery(run_dir).read_text()
        assert "photos not found" not in html and '<div class="missing"' not in html
        out = propose([str(run_dir)], dataset="train_recombined", out=str(tmp_path / f"p{kind}"))
        assert read_proposals(out / "proposals.json").data["composite"] is True
        photos = json.loads((out / "photos" / "index.json").read_text())
        assert len(photos) == len({t for f in composite_dataset().files for t in f.split("+")})
