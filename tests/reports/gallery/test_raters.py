"""The gallery shows ReaL's raters' answers on each card of a run scored with ReaL. The
run's files are given ImageNet val names (no val photos here): the mechanics only."""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np

from imagenet_multilabel.core.classes import class_names
from imagenet_multilabel.data.labels.ratings import ratings_for, read_rated_pairs
from imagenet_multilabel.data.labels.sets import load_real
from imagenet_multilabel.reports.gallery.build import write_gallery
from imagenet_multilabel.reports.gallery.page import raters_text
from tests.helpers import Predictions, write_run

ITEM = re.compile(r'<li class="(ok|no)"><b>([^<]*)</b> ([^<]*)</li>')


def _run(tmp_path: Path, labels: str) -> Path:
    pairs = read_rated_pairs()
    real = load_real()
    files = [f"ILSVRC2012_val_{i:08d}.JPEG" for i in pairs.images[:40].tolist()]
    files = [f for f in files if real.by_file[f]][:24]
    valid = np.zeros((len(files), 1000), dtype=bool)
    for i, f in enumerate(files):
        valid[i, list(real.by_file[f])] = True
    target = np.array([real.by_file[f][0] for f in files])
    logits = np.random.default_rng(1).normal(size=(len(files), 1000)).astype(np.float32)
    val = Predictions(files, target, logits, valid)
    return write_run(tmp_path / labels, "m", {"val": val}, records={"val": {"labels": labels}})


def test_cards_show_the_raters_answers(tmp_path: Path) -> None:
    page = write_gallery(_run(tmp_path, "real@0.9")).read_text()
    pairs, names = read_rated_pairs(), class_names()
    cards = re.findall(r'<article class="card".*?</article>', page, flags=re.S)
    assert cards
    for card in cards:
        file = re.search(r'<div class="file"[^>]*>([^<]*)</div>', card).group(1)
        votes = pairs.votes_of(file)
        items = ITEM.findall(card)
        assert items and len(items) == min(4, len(votes))
        best = sorted(votes.items(), key=lambda cv: (-cv[1]["score"], cv[0]))[:4]
        for (_, name, text), (cls, v) in zip(items, best, strict=True):
            assert html.unescape(name) == names[cls] and html.unescape(text) == raters_text(v)
    assert "of 5 raters: yes" in page


def test_no_raters_without_a_rated_label_set(tmp_path: Path) -> None:
    page = write_gallery(_run(tmp_path, "file")).read_text()
    assert "raters: yes" not in page and ratings_for("file") is None
    assert ratings_for("real@0.5") is not None


def test_raters_text() -> None:
    v = {"yes": 4, "maybe": 1, "no": 0, "raters": 5, "score": 0.987}
    assert raters_text(v) == "4 of 5 raters: yes, 1 maybe (score 0.99)"
    assert raters_text({**v, "maybe": 0}) == "4 of 5 raters: yes (score 0.99)"
