"""Hand-built runs on the package's demo photos: predictions whose sections are known by
construction, written by tests/helpers.py's ``write_run`` (the project's own writers, and
metrics computed by its metric code)."""

from __future__ import annotations

import numpy as np

from imagenet_multilabel.core.classes import NUM_CLASSES
from tests.helpers import Predictions, class_of, demo_photos

# one kind per image, in turn: what the image's logits and valid labels are made to be
KINDS = (
    "correct",  # top-1 = original label, the only valid one
    "right_scored_wrong",  # top-1 = a second valid label, not the original one
    "confidently_wrong",  # top-1 outside the valid set, p > 0.9
    "missed_second",  # 3 valid labels, one ranked near the bottom
    "no_label",  # empty valid set
    "unsure_wrong",  # top-1 outside the valid set, p < 0.1
)
NUM_PLAIN = 24
NUM_COMPOSITES = 6


def plain_dataset(with_labels: bool = True, seed: int = 0) -> Predictions:
    rng = np.random.default_rng(seed)
    files = demo_photos()[:NUM_PLAIN]
    target = np.array([class_of(f) for f in files])
    logits = rng.normal(0.0, 1.0, (NUM_PLAIN, NUM_CLASSES)).astype(np.float32)
    valid = np.zeros((NUM_PLAIN, NUM_CLASSES), dtype=bool)
    kinds = []
    for i, t in enumerate(target):
        kind = KINDS[i % len(KINDS)]
        kinds.append(kind)
        other, far = (t + 500 + i) % NUM_CLASSES, (t + 700 + i) % NUM_CLASSES
        valid[i, t] = kind != "no_label"
        if kind == "correct":
            logits[i, t] = 12 + i / 10
        elif kind == "right_scored_wrong":
            valid[i, other] = True
            logits[i, other], logits[i, t] = 10 + i / 10, 8
        elif kind == "confidently_wrong":
            logits[i, other], logits[i, t] = 14 + i / 10, 6
        elif kind == "missed_second":
            valid[i, [other, far]] = True
            logits[i, t], logits[i, other], logits[i, far] = 10, 8, -8 - i / 10
        elif kind == "no_label":
            logits[i, other] = 9 + i / 10
        else:  # unsure_wrong
            logits[i, other] = 3
    return Predictions(files, target, logits, valid if with_labels else None, kinds)


def composite_dataset(seed: int = 1) -> Predictions:
    """2-tile composites of distinct demo photos (as data/datasets/composites.py names them): the
    second tile's class is top-1; the first (original label) is ranked 2nd or far down."""
    rng = np.random.default_rng(seed)
    photos = demo_photos()[NUM_PLAIN : NUM_PLAIN + 2 * NUM_COMPOSITES]
    pairs = [(photos[2 * i], photos[2 * i + 1]) for i in range(NUM_COMPOSITES)]
    files = [f"{a}+{b}" for a, b in pairs]
    target = np.array([class_of(a) for a, _ in pairs])
    logits = rng.normal(0.0, 1.0, (NUM_COMPOSITES, NUM_CLASSES)).astype(np.float32)
    valid = np.zeros((NUM_COMPOSITES, NUM_CLASSES), dtype=bool)
    kinds = []
    for i, (a, b) in enumerate(pairs):
        valid[i, [class_of(a), class_of(b)]] = True
        logits[i, class_of(b)] = 9
        missed = i % 2 == 1
        logits[i, class_of(a)] = -9 if missed else 7
        kinds.append("missed_second" if missed else "found_both")
    return Predictions(files, target, logits, valid, kinds)


def ring_dataset(n: int = NUM_PLAIN) -> Predictions:
    """n demo photos (one per class), no label set; image i's top-5 are the classes of
    photos i+1, i, i+2, i+3, i+4 (mod n): its top-1 is wrong (every card is shown) and
    each of its top-5 classes but its own has one photo in the run, another one's."""
    files = demo_photos()[:n]
    target = np.array([class_of(f) for f in files])
    logits = np.zeros((n, NUM_CLASSES), dtype=np.float32)
    for i in range(n):
        for rank, j in enumerate((i + 1, i, i + 2, i + 3, i + 4)):
            logits[i, target[j % n]] = 10.0 - rank
    return Predictions(files, target, logits, None)


def ring_composites(n: int = 6) -> Predictions:
    """Composites (photo i, photo i+1) of :func:`ring_dataset`'s photos; top-5: the classes
    of photos i+1, i, i+2, i+3, i+4."""
    ring = demo_photos()[:NUM_PLAIN]
    files = [f"{ring[i]}+{ring[i + 1]}" for i in range(n)]
    target = np.array([class_of(ring[i]) for i in range(n)])
    logits = np.zeros((n, NUM_CLASSES), dtype=np.float32)
    valid = np.zeros((n, NUM_CLASSES), dtype=bool)
    for i in range(n):
        valid[i, [class_of(ring[i]), class_of(ring[i + 1])]] = True
        for rank, j in enumerate((i + 1, i, i + 2, i + 3, i + 4)):
            logits[i, class_of(ring[j])] = 10.0 - rank
    return Predictions(files, target, logits, valid)
