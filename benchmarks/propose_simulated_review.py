"""Two simulated reviewers label composites on the real review page, then the exports are
merged and scored with evaluate.py.

The proposals of ``benchmarks/propose_recall.py``'s runs (two-photo composites, truth:
both tiles' labels) are reviewed in headless Chromium by keyboard: reviewer A keeps
exactly the true classes among the candidates; reviewer B does the same but on a share of
the images (``--noise``) also keeps one wrong candidate. Their exports are merged
(``min_agree=2``) and ``evaluate.py labels=file`` scores the model with the merged set, beside
the composites' own labels. Prints the agreement, the review's speed and both scores.

    PYTHONPATH=src python benchmarks/propose_simulated_review.py --runs <sweep dir> \\
        --out /tmp/review_demo [--noise 0.1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from common import REPO, SAMPLE, fail

from imagenet_multilabel.propose.candidates import load_ensemble
from imagenet_multilabel.propose.proposals import base_name


def chrome():
    from selenium import webdriver

    driver_path = shutil.which("chromedriver")
    if driver_path is None:
        fail("no chromedriver: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(driver_path), options=options)
    return driver


def review(page: Path, truth: dict[str, set[int]], noise: float, seed: int, out: Path) -> Path:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    driver = chrome()
    try:
        driver.execute_cdp_cmd(
            "Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(out)}
        )
        driver.get(page.as_uri())
        driver.execute_script("localStorage.clear()")
        driver.refresh()
        body = driver.find_element(By.TAG_NAME, "body")
        started, presses = time.perf_counter(), 0
        n = driver.execute_script("return JSON.parse(proposals.textContent).images.length")
        for _ in range(n):
            state = driver.execute_script(
                "return [document.body.dataset.file, Array.from(document.querySelectorAll("
                "'#candidates button')).map(b => [+b.dataset.cls, b.className === 'on'])]"
            )
            file, cands = state
            want = truth[file]
            keys = [str(k + 1) for k, (c, on) in enumerate(cands) if (c in want) != on]
            wrong = [k for k, (c, _) in enumerate(cands) if c not in want]
            if noise and wrong and rng.random() < noise:
                keys.append(str(int(rng.choice(wrong)) + 1))
            for key in [*keys, Keys.ENTER]:
                body.send_keys(key)
                presses += 1
        seconds = time.perf_counter() - started
        body.send_keys("e")
        done: list[Path] = []
        for _ in range(200):
            done = list(out.glob("*.json"))
            if done and not list(out.glob("*.crdownload")):
                break
            time.sleep(0.1)
        print(f"reviewed {n} images with {presses} key presses in {seconds:.1f} s")
        return done[0]
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--num-images", type=int, default=200)
    args = parser.parse_args()
    if args.out.exists():
        fail(f"{args.out} exists: choose another --out")
    ens = load_ensemble([args.runs])
    if ens.valid is None:
        fail(f"{args.runs} holds no label set: use runs of composites (data=patchml)")
    truth = {
        base_name(p): set(np.flatnonzero(v).tolist())
        for p, v in zip(ens.paths.tolist(), ens.valid, strict=True)
    }
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}  # this checkout's package
    propose = [sys.executable, "-m", "imagenet_multilabel", "propose"]
    subprocess.run(
        [*propose, f"runs={args.runs}", f"out={args.out / 'review'}", f"exemplars={SAMPLE}"],
        check=True,
        env=env,
    )
    page = args.out / "review" / "review.html"
    a = review(page, truth, 0.0, 0, args.out / "reviewer_a")
    b = review(page, truth, args.noise, 1, args.out / "reviewer_b")
    merged = args.out / "merged.json"
    subprocess.run(
        [*propose, "merge", str(a), str(b), f"proposals={args.out / 'review'}", f"out={merged}"],
        check=True,
        env=env,
    )
    scores = {}
    for name, labels in (("composites' own labels", None), ("merged review", merged)):
        run = args.out / ("eval_" + ("own" if labels is None else "merged"))
        cmd = [
            sys.executable,
            str(REPO / "evaluate.py"),
            "data=patchml",
            f"data.base.root={SAMPLE}",
            f"data.num_images={args.num_images}",
            "logger=none",
            f"hydra.run.dir={run}",
        ]
        if labels is not None:
            cmd += ["labels=file", f"labels.path={labels}"]
        print(" ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, cwd=REPO, capture_output=True, env=env)
        scores[name] = json.loads((run / "metrics.json").read_text())
    keys = ["patchml/num_labeled", "patchml/real_top1", "patchml/vartopk_strict"]
    keys += ["patchml/map_macro", "patchml/f1"]
    print("| labels | " + " | ".join(k.split("/")[1] for k in keys) + " |")
    print("|---|" + "---:|" * len(keys))
    for name, metrics in scores.items():
        print(f"| {name} | " + " | ".join(f"{metrics[k]:.2f}" for k in keys) + " |")


if __name__ == "__main__":
    main()
