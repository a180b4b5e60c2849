"""Rebuild the vendored ReaL scores and rater votes from the authors' released arrays.

Reads ``scores.npz`` and ``raters.npz`` of google-research/reassessed-imagenet (plain NumPy
archives, loaded with ``allow_pickle=False``) and writes
``src/imagenet_multilabel/assets/labels/real/real_scores.npz``, one row per rated
(image, label) pair, in the release's order:

- ``image`` (uint16): the ILSVRC2012 val number (``ILSVRC2012_val_{image:08d}.JPEG``);
- ``label`` (uint16): the class index 0..999;
- ``score`` (float64): the pair's Dawid-Skene score, bit for bit as released;
- ``votes`` (uint8, pairs x 3): how many raters answered no / maybe / yes (the 85 raters'
  one-hot answers summed; which rater answered is dropped).

Run once by a maintainer; the package reads only the compact file. It then checks that
the file reproduces the sources exactly, and prints the SHA-256 lines of its
PROVENANCE.md (``provenance.py``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from provenance import print_provenance  # scripts/provenance.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SRC = ROOT.parent / "shared/data/labels/reassessed-imagenet"
DEFAULT_DST = ROOT / "src/imagenet_multilabel/assets/labels/real/real_scores.npz"
NUM_PAIRS = 184_962
PREFIX, SUFFIX = "ILSVRC2012_val_", ".JPEG"


def _pairs(info: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    files = info[:, 0].astype(str)
    if not all(f.startswith(PREFIX) and f.endswith(SUFFIX) for f in files):
        raise SystemExit("info holds file names that are not ILSVRC2012 val names")
    image = np.array([int(f[len(PREFIX) : -len(SUFFIX)]) for f in files], dtype=np.uint16)
    label = info[:, 1].astype(np.int64)
    if label.min() < 0 or label.max() > 999:
        raise SystemExit("info holds class indices outside 0..999")
    return image, label.astype(np.uint16)


def build(src: Path) -> dict[str, np.ndarray]:
    scores = np.load(src / "scores.npz", allow_pickle=False)
    raters = np.load(src / "raters.npz", allow_pickle=False)
    if not np.array_equal(scores["info"], raters["info"]):
        raise SystemExit("scores.npz and raters.npz ask different questions")
    image, label = _pairs(scores["info"])
    answers = raters["tensor"]  # raters x pairs x (no, maybe, yes), one-hot
    if answers.min() < 0 or answers.max() > 1 or not np.all(answers.sum(axis=2) <= 1):
        raise SystemExit("raters.npz answers are not one-hot")
    votes = answers.sum(axis=0).astype(np.uint8)
    score = scores["tensor"].astype(np.float64)
    if len(score) != NUM_PAIRS or not np.all((score >= 0) & (score <= 1)):
        raise SystemExit(f"expected {NUM_PAIRS} scores in [0, 1]")
    return {"image": image, "label": label, "score": score, "votes": votes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--src", type=Path, default=DEFAULT_SRC)
    parser.add_argument("--dst", type=Path, default=DEFAULT_DST)
    args = parser.parse_args()
    arrays = build(args.src)
    args.dst.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.dst, **arrays)
    back = np.load(args.dst, allow_pickle=False)
    if not all(np.array_equal(back[k], v) for k, v in arrays.items()):
        raise SystemExit(f"{args.dst} does not read back as written")
    print(f"wrote {len(arrays['score'])} rated pairs to {args.dst}")
    print_provenance([args.src / n for n in ("scores.npz", "raters.npz")], [args.dst])


if __name__ == "__main__":
    main()
