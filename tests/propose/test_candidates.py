"""Proposals from hand-built runs: candidates known by construction, proposals.json, and
bad input (one line, exit code 2, nothing written or overwritten)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from imagenet_multilabel.core.errors import DataError, UserError
from imagenet_multilabel.propose.candidates import Rule, image_candidates, load_ensemble
from imagenet_multilabel.propose.proposals import read_proposals
from imagenet_multilabel.propose.workflow import propose
from tests.helpers import class_of, demo_photos, write_run
from tests.propose.hand_built import dataset, make_runs, run_propose

A, B, C = 501, 502, 503


def two_models(t0: int) -> list[list[dict[int, float]]]:
    t1 = class_of(demo_photos()[1])
    return [
        [{A: 0.6, t0: 0.2, B: 0.1}, {t1: 0.85, B: 0.1}],
        [{A: 0.5, C: 0.3, t0: 0.05}, {t1: 0.8, B: 0.15}],
    ]


def test_candidates_are_the_models_proposals_by_support(tmp_path: Path) -> None:
    t0, t1 = (class_of(f) for f in demo_photos()[:2])
    runs = make_runs(tmp_path, two_models(t0))
    ens = load_ensemble(runs)
    assert ens.dataset == "demo" and ens.probs.shape == (2, 2, 1000)

    # top-2 or p >= 0.25: model 0 proposes {A, t0}, model 1 {A, C} for image 0
    cands = image_candidates(ens, Rule(top_k=2, min_prob=0.25, max_candidates=8))
    got = [(c.cls, c.support, c.original) for c in cands[0]]
    assert got == [(A, 2, False), (C, 1, False), (t0, 1, True)]
    a = cands[0][0]
    assert a.mean_prob == pytest.approx(0.55, abs=1e-5)
    assert a.max_prob == pytest.approx(0.6, abs=1e-5)
    # image 1: top-2 of each model holds t1 and B (both models), nothing else
    assert [(c.cls, c.support) for c in cands[1]] == [(t1, 2), (B, 2)]

    # at most 2: the original label stays, C goes (support 1 like the original)
    capped = image_candidates(ens, Rule(top_k=2, min_prob=0.25, max_candidates=2))
    assert [c.cls for c in capped[0]] == [A, t0]
    # both models must agree: only A and the original
    agreed = image_candidates(ens, Rule(top_k=2, min_prob=0.25, min_support=2))
    assert [c.cls for c in agreed[0]] == [A, t0]
    # by probability alone
    by_p = image_candidates(ens, Rule(top_k=0, min_prob=0.25))
    assert [c.cls for c in by_p[0]] == [A, C, t0]


def test_proposals_file_records_runs_models_rule(tmp_path: Path) -> None:
    t0 = class_of(demo_photos()[0])
    runs = make_runs(tmp_path, two_models(t0))
    out = propose([str(r) for r in runs], out=str(tmp_path / "p"), top_k=2, min_prob=0.25)
    props = read_proposals(out)
    data = json.loads((out / "proposals.json").read_text())
    assert data["runs"] == [str(r.resolve()) for r in runs]
    # each run's model label, with the input size its run.json records (as evaluate writes)
    assert data["models"] == ["hand_built@224", "hand_built@224"]
    assert data["rule"] == {"top_k": 2, "min_prob": 0.25, "max_candidates": 8, "min_support": 1}
    first = data["images"][0]
    assert first["file"] == demo_photos()[0] and first["original"] == t0
    assert [c["class"] for c in first["candidates"]] == [A, C, t0]
    assert (out / "review.html").is_file()
    assert len(list((out / "photos").glob("*.jpg"))) == 2  # the two demo photos
    # the same proposals again: the same hash, the page made again in place
    again = propose([str(r) for r in runs], out=str(out), top_k=2, min_prob=0.25)
    assert read_proposals(again).hash == props.hash


def test_runs_of_other_images_or_datasets_are_refused(tmp_path: Path) -> None:
    t0 = class_of(demo_photos()[0])
    runs = make_runs(tmp_path, two_models(t0))
    other = write_run(
        tmp_path / "other",
        "hand_built",
        {"demo": dataset([{A: 0.5}, {B: 0.5}], demo_photos()[5:7])},
    )
    with pytest.raises(DataError, match="different image lists"):
        load_ensemble([runs[0], other])
    renamed = write_run(tmp_path / "renamed", "hand_built", {"v2": dataset([{A: 0.5}, {B: 0.5}])})
    with pytest.raises(DataError, match="share no dataset"):
        load_ensemble([runs[0], renamed])


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["top_k=0", "min_prob=null"], "propose nothing"),
        (["min_prob=2"], "min_prob=2 must be in (0, 1]"),
        (["max_candidates=0"], "max_candidates=0"),
        (["colour=red"], "unknown option colour="),
    ],
)
def test_bad_rule_is_one_line(tmp_path: Path, args: list[str], says: str) -> None:
    t0 = class_of(demo_photos()[0])
    runs = make_runs(tmp_path, two_models(t0))
    out = tmp_path / "p"
    proc = run_propose(f"runs={runs[0]},{runs[1]}", f"out={out}", *args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and says in proc.stderr, proc.stderr
    assert not out.exists()


def test_other_proposals_are_not_overwritten(tmp_path: Path) -> None:
    t0 = class_of(demo_photos()[0])
    runs = make_runs(tmp_path, two_models(t0))
    out = propose([str(r) for r in runs], out=str(tmp_path / "p"), top_k=2, min_prob=0.25)
    before = (out / "proposals.json").read_bytes()
    proc = run_propose(f"runs={runs[0]},{runs[1]}", f"out={out}", "top_k=1")
    assert proc.returncode == 2 and "holds other proposals" in proc.stderr, proc.stderr
    assert (out / "proposals.json").read_bytes() == before
    other = write_run(
        tmp_path / "other",
        "hand_built",
        {"demo": dataset([{A: 0.5}, {B: 0.5}], demo_photos()[5:7])},
    )
    proc = run_propose(f"runs={runs[0]},{other}", f"out={tmp_path / 'q'}")
    assert proc.returncode == 2 and "different image lists" in proc.stderr
    assert proc.stderr.count("\n") == 1
    assert not (tmp_path / "q").exists()


def test_a_sweep_folder_stands_for_its_jobs(tmp_path: Path) -> None:
    t0 = class_of(demo_photos()[0])
    sweep = tmp_path / "sweep"
    make_runs(sweep, two_models(t0))
    (sweep / "unfinished").mkdir()  # a job without metrics.json is not a run
    ens = load_ensemble([sweep])
    assert len(ens.runs) == 2
    with pytest.raises(UserError, match="given twice"):
        load_ensemble([sweep, sweep / "run0"])
    assert np.allclose(ens.probs.sum(axis=-1), 1.0, atol=1e-4)


def test_review_page_shows_exemplars_never_the_image_itself(tmp_path: Path) -> None:
    """Each image proposes the other's class: its exemplar is the other photo (from the
    dataset's own images); an image's own class has none (its only photo is itself)."""
    f0, f1 = demo_photos()[:2]
    t0, t1 = class_of(f0), class_of(f1)
    rows = [{t0: 0.6, t1: 0.3}, {t1: 0.6, t0: 0.3}]
    runs = make_runs(tmp_path, [rows])
    out = propose([str(runs[0])], out=str(tmp_path / "p"), top_k=2)
    page = (out / "review.html").read_text()
    data = json.loads(page.split('type="application/json">', 1)[1].split("</script>", 1)[0])
    e0, e1 = (im["e"] for im in data["images"])
    assert set(e0) == {str(t1)} and set(e1) == {str(t0)}
    photos = json.loads((out / "photos" / "index.json").read_text())
    assert e0[str(t1)] != photos[f0]  # another file (96 px), made from photo 1
    assert (out / "exemplars" / e0[str(t1)]).is_file()
