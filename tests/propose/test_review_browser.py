"""The review page in a real Chromium driven by Selenium (Debian's chromium-driver): two
reviewers label 10 photos (one by keyboard, with a reload midway that keeps the progress;
one by mouse), export, import, merge, and ``evaluate.py labels=file`` scores with the
exports; and the time one key takes to show the next image on a page of 1,000 images."""

from __future__ import annotations

import json
import re
import shutil
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from imagenet_multilabel.core.classes import NUM_CLASSES
from imagenet_multilabel.core.files import read_json
from imagenet_multilabel.propose.workflow import propose
from tests.cdp import apt_install, find_chromium
from tests.helpers import DEMO_PHOTOS, ONE_THREAD, Predictions, class_of, evaluate_py, write_run
from tests.propose.hand_built import run_propose

webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium (dev extra)")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

pytestmark = pytest.mark.slow


def _chromedriver() -> tuple[str, str] | None:
    """Chromium and its WebDriver, installed with apt-get where missing (as root)."""
    found = find_chromium(), shutil.which("chromedriver")
    if not all(found) and apt_install("chromium", "chromium-driver"):
        found = find_chromium(), shutil.which("chromedriver")
    return found if all(found) else None  # type: ignore[return-value]


@pytest.fixture(scope="module")
def driver() -> Iterator[webdriver.Chrome]:
    found = _chromedriver()
    if found is None:
        pytest.skip(
            "no Chromium + chromedriver: apt-get install chromium chromium-driver (installing "
            "them here needs root and apt-get)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,900"):
        options.add_argument(flag)
    chrome = webdriver.Chrome(service=webdriver.ChromeService(found[1]), options=options)
    yield chrome
    chrome.quit()


def download_to(driver: webdriver.Chrome, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    driver.execute_cdp_cmd(
        "Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(folder)}
    )


def downloaded(folder: Path, timeout: float = 20.0) -> Path:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        done = [p for p in folder.glob("*.json")]
        if done and not list(folder.glob("*.crdownload")):
            return done[0]
        time.sleep(0.1)
    raise AssertionError(f"no download in {folder}")


def page_state(driver: webdriver.Chrome) -> dict:
    return driver.execute_script(
        "return {file: document.body.dataset.file,"
        " progress: document.getElementById('progress').textContent,"
        " on: Array.from(document.querySelectorAll('#candidates button.on'))"
        ".map(b => +b.dataset.cls),"
        " classes: Array.from(document.querySelectorAll('#candidates button'))"
        ".map(b => +b.dataset.cls)}"
    )


def press(driver: webdriver.Chrome, *keys: str) -> None:
    body = driver.find_element(By.TAG_NAME, "body")
    for key in keys:
        body.send_keys(key)


@pytest.fixture(scope="module")
def review(tmp_path_factory) -> dict[str, Path]:
    """10 demo photos, two real runs of them (a tiny model, with and without a flip: one
    multirun) and the proposals' review page."""
    tmp = tmp_path_factory.mktemp("review")
    photos = tmp / "photos"
    photos.mkdir()
    for p in DEMO_PHOTOS[:10]:
        shutil.copy(p, photos / p.name)
    sweep = tmp / "runs"
    proc = evaluate_py(
        "-m",
        "model=test_tiny",
        "data=demo",
        f"data.root={photos}",
        "logger=none",
        "preprocess.hflip=false,true",
        f"hydra.sweep.dir={sweep}",
        "hydra.sweep.subdir=${hydra.job.num}",  # folders 0 and 1: no comma in runs=
        "hydra.callbacks.leaderboard.figures=false",
        env=ONE_THREAD,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = [sweep / "0", sweep / "1"]
    proc = run_propose(f"runs={runs[0]},{runs[1]}", f"out={tmp / 'review'}", "top_k=3")
    assert proc.returncode == 0, proc.stderr
    print(proc.stdout)
    return {"tmp": tmp, "photos": photos, "page": tmp / "review" / "review.html"}


def evaluate_with(review: dict[str, Path], labels: Path, out: str) -> dict:
    proc = evaluate_py(
        "model=test_tiny",
        "data=demo",
        f"data.root={review['photos']}",
        "logger=none",
        "labels=file",
        f"labels.path={labels}",
        f"hydra.run.dir={review['tmp'] / out}",
        env=ONE_THREAD,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    print(proc.stdout[-1500:])
    return {
        "metrics": read_json(review["tmp"] / out / "metrics.json"),
        "run": read_json(review["tmp"] / out / "run.json"),
    }


def test_two_reviewers_export_merge_and_evaluate(driver, review) -> None:
    """Over 80 lines because it is one story in order (two reviewers on the page, their
    exports merged, the merged set evaluated), each step reading what the one before left
    in the browser and on disk; cut apart, the steps would hand the browser's state along."""
    driver.get(review["page"].as_uri())
    driver.execute_script("localStorage.clear()")
    driver.refresh()
    expected: dict[str, list[int]] = {}
    # reviewer 1, by keyboard: keep, add the 2nd candidate, no label fits, swap, keep...
    plans = [[], ["2"], None, ["1", "2"], [], ["3"], [], ["2", "3"], None, []]
    for i, keys in enumerate(plans):
        if i == 5:  # reload midway: the progress and the position are kept
            driver.refresh()
            state = page_state(driver)
            assert state["progress"] == "5 / 10 reviewed", state
            assert state["file"] == DEMO_PHOTOS[5].name, state
        state = page_state(driver)
        assert state["file"] == DEMO_PHOTOS[i].name
        assert state["on"] == [class_of(DEMO_PHOTOS[i].name)]  # the original label, on
        if keys is None:
            press(driver, "0")
            expected[state["file"]] = []
            continue
        press(driver, *keys)
        chosen = set(page_state(driver)["on"])
        press(driver, Keys.ENTER)
        expected[state["file"]] = sorted(chosen)
        want = {class_of(state["file"])} ^ {state["classes"][int(k) - 1] for k in keys}
        assert chosen == want
    assert page_state(driver)["progress"] == "10 / 10 reviewed"
    download_to(driver, review["tmp"] / "dl1")
    press(driver, "e")
    first = downloaded(review["tmp"] / "dl1")
    data = json.loads(first.read_text())
    origin = data.pop("_origin")
    assert data == expected
    assert origin["kind"] == "reviewed" and origin["reviewers"] == 1 and origin["reviewed"] == 10
    print("reviewer 1:", json.dumps(data))

    # a fresh browser profile's state: nothing; importing the export brings it all back
    driver.execute_script("localStorage.clear()")
    driver.refresh()
    assert page_state(driver)["progress"] == "0 / 10 reviewed"
    driver.find_element(By.ID, "import").send_keys(str(first))
    WebDriverWait(driver, 10).until(lambda d: page_state(d)["progress"] == "10 / 10 reviewed")
    assert driver.execute_script("return window.reviewLabels()")["_origin"]["reviewed"] == 10
    # a model-made set does not continue a review: refused, nothing changes
    made = review["tmp"] / "model_made.json"
    made.write_text(json.dumps({**data, "_origin": {"kind": "model-made"}}))
    driver.execute_script("localStorage.clear()")
    driver.refresh()
    driver.find_element(By.ID, "import").send_keys(str(made))
    alert = WebDriverWait(driver, 10).until(expected_conditions.alert_is_present())
    assert "model-made" in alert.text
    alert.accept()
    assert page_state(driver)["progress"] == "0 / 10 reviewed"

    # reviewer 2, by mouse: the original label everywhere, plus the 2nd candidate of image 1
    driver.execute_script("localStorage.clear()")
    driver.refresh()
    driver.find_element(By.ID, "reviewer").send_keys("Ana María")
    second_expected = {}
    for i in range(10):
        state = page_state(driver)
        if i == 1:
            driver.find_elements(By.CSS_SELECTOR, "#candidates button")[1].click()
        second_expected[state["file"]] = sorted(page_state(driver)["on"])
        driver.find_element(By.ID, "next").click()
    download_to(driver, review["tmp"] / "dl2")
    driver.find_element(By.ID, "export").click()
    second = downloaded(review["tmp"] / "dl2")
    got = json.loads(second.read_text())
    assert got.pop("_origin")["reviewer"] == "Ana María"
    assert got == second_expected
    # two reviewers' exports never share a file name: the name typed in, the time
    assert second.name.startswith(f"labels_demo_{origin['proposals']}_Ana-Mar-a_")
    assert re.fullmatch(r"labels_demo_[0-9a-f]+_\d{8}-\d{6}\.json", first.name), first.name

    # one export scores as it is
    scored = evaluate_with(review, first, "eval_reviewer1")
    assert scored["run"]["datasets"]["demo"]["label_origin"] == "reviewed by 1 person"
    assert scored["metrics"]["demo/num_unlabeled"] == 2  # the two "no label fits"

    # the merge: classes both kept; agreement where the sets are identical
    merged = review["tmp"] / "merged.json"
    proc = run_propose(
        "merge", str(first), str(second), f"proposals={review['page'].parent}", f"out={merged}"
    )
    assert proc.returncode == 0, proc.stderr
    print(proc.stdout)
    labels = read_json(merged)
    same = sum(expected[f] == second_expected[f] for f in expected)
    assert labels["_origin"]["identical_share"] == same / 10
    for f in expected:
        assert labels[f] == sorted(set(expected[f]) & set(second_expected[f]))
    # the agreement page renders its summary (no raw Markdown)
    driver.get(merged.with_name("merged_agreement.html").as_uri())
    summary = driver.find_element(By.CSS_SELECTOR, ".summary")
    assert summary.find_elements(By.CSS_SELECTOR, "table tr th")
    assert "|---" not in summary.text and "# Agreement" not in summary.text
    assert "reviewers:" in summary.find_element(By.CSS_SELECTOR, "ul li").text
    scored = evaluate_with(review, merged, "eval_merged")
    assert scored["run"]["datasets"]["demo"]["label_origin"] == "reviewed by 2 people"
    print(
        "evaluate.py labels=file (merged):",
        {k: v for k, v in scored["metrics"].items() if "real" in k or "unlabeled" in k},
    )


def test_candidates_without_exemplars_show_their_name_large(driver, review) -> None:
    """A folder of one photo per class (the user's own, usually): no candidate has an
    exemplar, so none shows an empty box; each shows its class name large, and the page
    says how to add exemplars."""
    driver.get(review["page"].as_uri())
    buttons = driver.find_elements(By.CSS_SELECTOR, "#candidates button")
    without = [b for b in buttons if not b.find_elements(By.TAG_NAME, "img")]
    assert without and not driver.find_elements(By.CSS_SELECTOR, ".noex")
    for b in without:
        assert "noexample" in b.get_attribute("class")
        size = float(
            b.find_element(By.CSS_SELECTOR, ".name").value_of_css_property("font-size")[:-2]
        )
        assert size >= 18
    hint = driver.find_element(By.ID, "exemplar-hint").text
    assert "exemplars=<folder>" in hint and "have no example photo" in hint


def test_key_press_latency_on_1000_images(driver, tmp_path: Path) -> None:
    """1,000 two-photo composites of the demo photos: the time from a key press to the
    next image's photos decoded and drawn, as the page measures it (and as WebDriver sees
    it, with its own round trip)."""
    names = [p.name for p in DEMO_PHOTOS]
    pairs = [(a, b) for a in names for b in names if a != b][::9][:1000]
    rng = np.random.default_rng(0)
    files = [f"{a}+{b}" for a, b in pairs]
    logits = rng.normal(0, 2, (len(files), NUM_CLASSES)).astype(np.float32)
    target = np.array([class_of(a) for a, _ in pairs])
    run = write_run(
        tmp_path / "run", "hand_built", {"patchml": Predictions(files, target, logits, None)}
    )
    started = time.perf_counter()
    page = propose([str(run)], out=str(tmp_path / "review")) / "review.html"
    build = time.perf_counter() - started
    driver.get(page.as_uri())
    driver.execute_script("localStorage.clear()")
    driver.refresh()
    assert page_state(driver)["progress"] == "0 / 1000 reviewed"
    in_page, round_trip = [], []
    for _ in range(40):
        before = page_state(driver)["file"]
        driver.execute_script("window.reviewKeyMs = undefined")
        t0 = time.perf_counter()
        press(driver, Keys.ENTER)
        WebDriverWait(driver, 10, poll_frequency=0.002).until(
            lambda d: d.execute_script("return window.reviewKeyMs") is not None
        )
        round_trip.append(1000 * (time.perf_counter() - t0))
        in_page.append(driver.execute_script("return window.reviewKeyMs"))
        assert page_state(driver)["file"] != before
    assert page_state(driver)["progress"] == "40 / 1000 reviewed"
    # the filters: reviewed or not, a class, a number of candidates
    shown = "return document.getElementById('shown').textContent"
    Select(driver.find_element(By.ID, "f-reviewed")).select_by_value("no")
    assert driver.execute_script(shown) == "image 1 of 960 shown"
    Select(driver.find_element(By.ID, "f-reviewed")).select_by_value("")
    props = read_json(page.parent / "proposals.json")["images"]
    cls = props[0]["original"]
    with_cls = sum(
        im["original"] == cls or any(c["class"] == cls for c in im["candidates"]) for im in props
    )
    Select(driver.find_element(By.ID, "f-class")).select_by_value(str(cls))
    assert driver.execute_script(shown) == f"image 1 of {with_cls} shown"
    assert page_state(driver)["file"] == props[0]["file"]
    Select(driver.find_element(By.ID, "f-class")).select_by_value("")
    n = len(props[3]["candidates"])
    Select(driver.find_element(By.ID, "f-count")).select_by_value(str(n))
    count = sum(len(im["candidates"]) == n for im in props)
    assert driver.execute_script(shown).endswith(f" of {count} shown")
    driver.save_screenshot(str(tmp_path / "review_1000.png"))
    print(
        f"\n1000-image review page built in {build:.1f} s; key press -> next image shown: "
        f"median {statistics.median(in_page):.1f} ms, max {max(in_page):.1f} ms in the page; "
        f"{statistics.median(round_trip):.1f} ms median through WebDriver (40 presses)"
    )
    assert statistics.median(in_page) < 200
