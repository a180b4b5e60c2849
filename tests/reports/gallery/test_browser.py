"""The gallery page in a real headless Chromium, opened from disk (file://): every section
is there, every thumbnail loads, the filters change what is shown, nothing is fetched
from a network and no script fails. A screenshot is saved beside the test's output."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagenet_multilabel.core.classes import class_names, wnids
from imagenet_multilabel.data.datasets.folders import DEMO_ROOT
from imagenet_multilabel.reports.gallery.build import write_gallery
from imagenet_multilabel.reports.gallery.selection import row_stats
from imagenet_multilabel.reports.images.thumbnails import thumbnail_name
from tests.cdp import Browser, apt_install, find_chromium
from tests.helpers import SAMPLE, class_of, requires_sample, write_run
from tests.reports.gallery.hand_built import plain_dataset, ring_dataset


def _install_chromium() -> str | None:
    """apt-get install chromium when running as root with apt (Debian/Ubuntu), else None."""
    return find_chromium() if apt_install("chromium") else None


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[Browser]:
    executable = find_chromium() or _install_chromium()
    if executable is None:
        pytest.skip(
            "no Chromium: install it (apt-get install chromium) to run the browser test; "
            "installing it here needs root and apt-get"
        )
    b = Browser(executable, tmp_path_factory.mktemp("chromium-profile"))
    b.call("Network.enable")
    yield b
    b.close()


def open_page(browser: Browser, page: Path) -> None:
    browser.open(page.resolve().as_uri())


def requested_urls(browser: Browser) -> list[str]:
    return [
        e["params"]["request"]["url"]
        for e in browser.events
        if e.get("method") == "Network.requestWillBeSent"
    ]


def script_errors(browser: Browser) -> list:
    return [e for e in browser.events if e.get("method") == "Runtime.exceptionThrown"]


def set_filter(browser: Browser, element: str, value: str) -> int:
    """Set a filter control as a user would (value + input event); the count shown after."""
    browser.evaluate(
        f"(() => {{ const e = document.getElementById({element!r}); e.value = {value!r};"
        " e.dispatchEvent(new Event('input', {bubbles: true})); })()"
    )
    return browser.evaluate("document.querySelectorAll('.card:not([hidden])').length")


def test_gallery_in_chromium(browser: Browser, labeled_run, tmp_path: Path) -> None:
    run_dir, datasets = labeled_run
    page = write_gallery(run_dir)
    open_page(browser, page)

    sections = browser.evaluate(
        "Array.from(document.querySelectorAll('.gsec')).map(s => [s.id, "
        "s.querySelectorAll('.card').length])"
    )
    demo = datasets["demo"]
    expected = {
        f"demo-{k}": len(demo.rows(k))
        for k in ("right_scored_wrong", "confidently_wrong", "missed_second", "no_label")
    }
    expected |= {"patchml-right_scored_wrong": 6, "patchml-confidently_wrong": 0}
    expected |= {"patchml-missed_second": 3, "patchml-no_label": 0, "patchml-composites": 6}
    assert dict(sections) == expected

    images = browser.evaluate(
        "Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])"
    )
    assert all(done and w > 0 and h > 0 for done, w, h in images), images
    photos = browser.evaluate("document.querySelectorAll('.photo img').length")
    n_tiles = sum(expected[k] for k in expected if k.startswith("demo")) + 2 * (6 + 3 + 6)
    assert photos == n_tiles
    exemplars = browser.evaluate("document.querySelectorAll('.top5 img.ex').length")
    assert len(images) == photos + exemplars
    assert browser.evaluate("document.querySelectorAll('.missing').length") == 0

    total = photos - 2 * (6 + 3 + 6) + 6 + 3 + 6
    count = "document.getElementById('f-count').textContent"
    assert browser.evaluate(count) == f"Showing {total} of {total} images"

    # by class name: the original label of one image (and any card that lists it)
    name = class_names()[int(demo.target[1])]
    shown = set_filter(browser, "f-class", name.upper())
    expected_shown = browser.evaluate(
        f"Array.from(document.querySelectorAll('.card')).filter(c => "
        f"c.dataset.names.includes({name.lower()!r})).length"
    )
    assert 1 <= shown == expected_shown < total
    assert browser.evaluate(count) == f"Showing {shown} of {total} images"
    set_filter(browser, "f-class", "")

    # by number of valid labels: 0 leaves the images no label fits
    assert set_filter(browser, "f-nvalid", "0") == expected["demo-no_label"]
    assert set_filter(browser, "f-nvalid", "3") == expected["demo-missed_second"]
    empty_note = "document.querySelector('#demo-right_scored_wrong .none-match').hidden"
    assert browser.evaluate(empty_note) is False  # "no image matches" shows
    set_filter(browser, "f-nvalid", "any")

    # by top-1 probability: >= 90% leaves the confident ones
    stats = row_stats(demo.logits, demo.valid)
    confs = [
        float(c)
        for c in browser.evaluate(
            "Array.from(document.querySelectorAll('.card')).map(c => c.dataset.conf)"
        )
    ]
    assert set_filter(browser, "f-lo", "90") == sum(c >= 0.9 for c in confs)
    assert 0 < sum(c >= 0.9 for c in confs) < total
    assert max(stats.confidence) > 0.9
    browser.evaluate("document.getElementById('f-reset').click()")
    assert browser.evaluate(count) == f"Showing {total} of {total} images"

    assert all(u.startswith(("file://", "data:")) for u in requested_urls(browser))
    assert script_errors(browser) == []
    shot = browser.screenshot(tmp_path / "gallery.png")
    print(f"screenshot: {shot}")
    assert shot.stat().st_size > 10_000


def test_placeholders_and_no_label_set_in_chromium(browser: Browser, tmp_path: Path) -> None:
    """Photos that moved show as placeholders, not broken images; a run without a label
    set says so and disables the valid-label filter."""
    d = plain_dataset(with_labels=False)
    run_dir = write_run(tmp_path / "run", "hand_built", {"demo": d}, root=tmp_path / "moved_away")
    open_page(browser, write_gallery(run_dir))
    cards = int(np.sum(row_stats(d.logits).top1 != d.target))
    assert browser.evaluate("document.querySelectorAll('.card').length") == cards
    assert browser.evaluate("document.images.length") == 0
    assert browser.evaluate("document.querySelectorAll('.missing').length") == cards
    assert "No label set was present" in browser.evaluate("document.body.innerText")
    assert browser.evaluate("document.getElementById('f-nvalid').disabled") is True
    browser.screenshot(tmp_path / "placeholders.png", full_page=False)
    assert set_filter(browser, "f-hi", "0") < cards
    assert script_errors(browser) == []


@pytest.mark.slow
def test_gallery_of_a_real_run_in_chromium(browser: Browser, compose_cfg) -> None:
    """evaluate (tiny random model, default data: demo photos + composites), then the
    gallery the way ``gallery=true`` makes it: real photos, real predictions."""
    from imagenet_multilabel.tasks.evaluate import evaluate

    cfg = compose_cfg("model=test_tiny", "batch_size=25", "gallery=true")
    evaluate(cfg)
    run_dir = Path(cfg.paths.output_dir)
    if cfg.gallery:  # the call evaluate makes at its end
        write_gallery(run_dir, cfg.gallery)
    open_page(browser, run_dir / "gallery" / "index.html")
    ids = browser.evaluate("Array.from(document.querySelectorAll('.gsec')).map(s => s.id)")
    assert "demo-wrong_top1" in ids and "patchml-composites" in ids
    images = browser.evaluate("Array.from(document.images).map(i => i.naturalWidth)")
    assert images and all(w > 0 for w in images)
    assert browser.evaluate("document.querySelectorAll('.missing').length") == 0
    assert script_errors(browser) == []
    browser.screenshot(run_dir / "gallery.png", full_page=False)


CARD_EXEMPLARS = """Array.from(document.querySelectorAll('.card')).map(card => [
  card.querySelector('.photo img').getAttribute('src'),
  Array.from(card.querySelectorAll('.top5 li')).map(li => {
    const ex = li.querySelector('.ex');
    return [li.querySelector('.n').textContent, ex.tagName, ex.getAttribute('src'),
            ex.getAttribute('title'), ex.complete, ex.naturalWidth];
  })])"""


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("L").resize((16, 16)), dtype=np.float64)


def test_exemplars_load_and_are_other_photos_in_chromium(browser: Browser, tmp_path: Path) -> None:
    """Beside each top-5 class, a photo of that class from the run: never the card's own
    (its own class, whose only photo it is, shows none); every exemplar loads."""
    d = ring_dataset()
    run_dir = write_run(tmp_path / "run", "hand_built", {"demo": d})
    page = write_gallery(run_dir)
    open_page(browser, page)
    cards = browser.evaluate(CARD_EXEMPLARS)
    assert len(cards) == len(d.files)
    names = class_names()
    photo_of = {names[class_of(f)]: f for f in d.files}
    for photo_src, rows in cards:
        own = next(f for f in d.files if thumbnail_name(DEMO_ROOT / f) in photo_src)
        assert len(rows) == 5
        for name, tag, src, title, complete, width in rows:
            if photo_of[name] == own:
                assert tag == "SPAN"  # no other photo of its class: none shown
                continue
            assert tag == "IMG" and complete and width > 0, (name, src)
            assert src != photo_src and src.startswith("exemplars/")
            assert title.endswith(photo_of[name])  # a photo of the class it stands beside
            difference = np.abs(_pixels(page.parent / src) - _pixels(page.parent / photo_src))
            assert difference.mean() > 5, (name, src)
    assert sum(tag == "IMG" for _, rows in cards for _, tag, *_ in rows) == 4 * len(cards)
    exemplar_files = list((page.parent / "exemplars").iterdir())
    assert len(exemplar_files) == len(d.files)  # one thumbnail per photo, however often shown
    assert all(p.stat().st_size < 6_000 for p in exemplar_files)
    assert script_errors(browser) == []
    shot = browser.screenshot(tmp_path / "exemplars_card.png", selector=".card")
    print(f"screenshot: {shot}")

    html = write_gallery(run_dir, {"exemplars": "none"}).read_text()
    assert "exemplars/" not in html and not (page.parent / "exemplars").exists()


@requires_sample
def test_exemplars_from_a_folder_in_chromium(browser: Browser, tmp_path: Path) -> None:
    """gallery.exemplars=<the ImageNet sample>: its photo of each class; the card's own
    photo (the demo photos are the sample's, resized, under the same names) never."""
    d = ring_dataset()
    run_dir = write_run(tmp_path / "run", "hand_built", {"demo": d})
    open_page(browser, write_gallery(run_dir, {"exemplars": str(SAMPLE)}))
    cards = browser.evaluate(CARD_EXEMPLARS)
    names = class_names()
    for photo_src, rows in cards:
        own = next(f for f in d.files if thumbnail_name(DEMO_ROOT / f) in photo_src)
        for name, tag, _, title, complete, width in rows:
            if name == names[class_of(own)]:
                assert tag == "SPAN"
            else:
                assert tag == "IMG" and complete and width > 0
                wnid = wnids()[names.index(name)]
                assert title.startswith(f"an image of {name}: {wnid}_")
    assert script_errors(browser) == []
