"""Sweeps and the reading commands never report stale or failed work as done: a job's
identity includes the data it read, a failed job is never counted done and fails the
command, an unfinished job stays out of another configuration's row, and train.py runs
and sweep folders are read for what they are. Real multiruns of evaluate.py / train.py
with model=test_tiny on the demo photos."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from imagenet_multilabel.commands.report import main as report
from imagenet_multilabel.core.errors import DataError, UserError
from imagenet_multilabel.data.fingerprint import changes, fingerprint, same_data
from imagenet_multilabel.reports.leaderboard import gather
from imagenet_multilabel.runs.rundir import RunDir
from tests.helpers import DEMO_PHOTOS, ONE_THREAD, evaluate_py, train_py, write_failed, write_run

TINY = ("model=test_tiny", "callbacks=none", "num_workers=0")


def evaluate(*args: str):
    return evaluate_py(*args, env=ONE_THREAD)


def leaderboard(sweep: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((sweep / "leaderboard.csv").open()))


def photos(folder: Path, first: int, last: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for path in DEMO_PHOTOS[first:last]:
        shutil.copy(path, folder / path.name)
    return folder


# ------------------------------------------------------------------------- fingerprint


def test_the_fingerprint_sees_photos_added_replaced_and_labels_edited(tmp_path: Path) -> None:
    root = photos(tmp_path / "p", 0, 3)
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"a.JPEG": [1]}))
    files = sorted(p.name for p in root.iterdir())
    first = fingerprint(root, files, [labels])
    assert first["num_files"] == 3 and first["bytes"] == sum(
        (root / f).stat().st_size for f in files
    )
    assert same_data(first, fingerprint(root, files, [labels]))  # "read" differs only
    assert not same_data(None, first)
    photos(root, 3, 4)
    more = sorted(p.name for p in root.iterdir())
    assert changes(first, fingerprint(root, more, [labels])) == "3 -> 4 images"
    shutil.copy(DEMO_PHOTOS[10], root / files[0])  # another photo, same name
    assert changes(first, fingerprint(root, files, [labels])) == "images replaced or modified"
    labels.write_text(json.dumps({"a.JPEG": [2]}))
    now = fingerprint(root, files, [labels])
    assert "label file changed" in changes(first, now)


# ---------------------------------------------------------------------- resume and data


@pytest.mark.slow
def test_resume_redoes_a_job_whose_photos_or_label_file_changed(tmp_path: Path) -> None:
    root = photos(tmp_path / "photos", 0, 5)
    labels = tmp_path / "labels.json"
    names = [p.name for p in DEMO_PHOTOS[:10]]
    labels.write_text(json.dumps({n: [n.split("_")[0]] for n in names}))
    sweep = tmp_path / "sweep"
    args = (*TINY, "data=demo", f"data.root={root}", "labels=file", f"labels.path={labels}")
    proc = evaluate("-m", *args, f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (row,) = leaderboard(sweep)
    assert row["demo/num_images"] == "5.0" and row["data_read"]
    (job,) = [p for p in sweep.iterdir() if (p / "run.json").is_file()]
    recorded = RunDir(job).info["datasets"]["demo"]["fingerprint"]
    assert recorded["num_files"] == 5 and list(recorded["labels"]) == [str(labels)]

    photos(root, 5, 10)  # 5 photos added to the folder
    proc = evaluate(*args, f"resume={sweep}")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "the data changed since it was read (demo: 5 -> 10 images): evaluating" in log
    assert leaderboard(sweep)[0]["demo/num_images"] == "10.0"

    proc = evaluate(*args, f"resume={sweep}")  # nothing changed: skipped
    assert "complete results, skipped" in proc.stdout + proc.stderr

    labels.write_text(json.dumps({n: [n.split("_")[0], "n01440764"] for n in names}))
    proc = evaluate(*args, f"resume={sweep}")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "(demo: label file changed): evaluating" in log
    assert float(leaderboard(sweep)[0]["demo/vartopk_strict"]) >= 0


# --------------------------------------------------------------- failures and checks


def test_settings_of_what_a_run_writes_are_refused_before_it_runs(compose_cfg) -> None:
    """The settings check refuses them before the task (as evaluate.py runs it): nothing
    written, not even the run folder."""
    from imagenet_multilabel.checks import check_run_settings
    from imagenet_multilabel.tasks.evaluate import evaluate as evaluate_task

    for setting, line in (
        ("gallery=maybe", "gallery must be true, false or a node of options, not 'maybe'"),
        ("gallery={per_section:0}", "gallery.per_section=0 is out of range: use 1 to 10000"),
        ("gallery={output_dir:/etc/hostname}", "gallery.output_dir=/etc/hostname is a file"),
        ("gallery={exemplars:/nonexistent/photos}", "gallery.exemplars=/nonexistent/photos does"),
        ("gallery={exemplars:/etc/hostname}", "gallery.exemplars=/etc/hostname is a file"),
        ("optimized_metric=top1", "optimized_metric='top1' is not a metric name"),
    ):
        cfg = compose_cfg("model=test_tiny", "data=demo", setting)
        with pytest.raises(UserError) as e:
            check_run_settings(cfg)
            evaluate_task(cfg)
        assert str(e.value).startswith(line)
        assert not Path(cfg.paths.output_dir).exists()


@pytest.mark.slow
def test_an_unknown_optimized_metric_is_refused_before_the_forward_pass(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = evaluate(*TINY, "data=demo", "optimized_metric=bogus/top1", f"hydra.run.dir={out}")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: optimized_metric='bogus/top1' is not among the metrics this run writes "
        "(e.g. 'demo/ece')"
    )
    assert not (out / "metrics.json").exists() and not (out / "predictions").exists()


def test_a_job_with_metrics_and_failed_json_is_failed_and_redone(tmp_path: Path) -> None:
    """What an older version left (metrics.json, then failed.json): failed, not done."""
    job = write_run(tmp_path / "sweep" / "a", "a", {"x": {"top1": 70.0}})
    write_failed(job, "a", ["x"], "gallery.per_section=0 is out of range")
    board = gather([tmp_path / "sweep"])
    assert [j.status for j in board.jobs] == ["failed"] and not board.rows[0].done


@pytest.mark.slow
def test_a_sweep_with_a_failed_job_writes_its_leaderboard_then_exits_1(tmp_path: Path) -> None:
    root = photos(tmp_path / "photos", 0, 4)
    sweep = tmp_path / "sweep"
    args = (*TINY, "data=demo", f"data.root={root}", "model.name=test_efficientnet,resnet5")
    proc = evaluate("-m", *args, f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 1, proc.stderr[-3000:]
    # the failed job's folder (its name may be shortened to a hash where the photos' path
    # is long, as under pytest-xdist's worker folders)
    (failed,) = [p.name for p in sweep.iterdir() if (p / "failed.json").is_file()]
    assert "resnet5" in json.loads((sweep / failed / "failed.json").read_text())["model"]["name"]
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: 1 job(s) of the sweep failed: {failed}"
    )
    assert "leaderboard of 2 jobs (1 done, 1 failed)" in proc.stdout
    assert [r["status"] for r in leaderboard(sweep)] == ["done", "failed"]

    # a job that fails once its metrics are written (the gallery cannot be written):
    # failed.json and no metrics.json; the leaderboard says failed, a resume redoes it
    sweep = tmp_path / "gallery"
    args = (*TINY, "data=demo", f"data.root={root}", "gallery={output_dir:/proc/nope}")
    proc = evaluate("-m", *args, f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 1, proc.stderr[-3000:]
    (job,) = [p for p in sweep.iterdir() if (p / "job.json").is_file()]
    assert (job / "failed.json").is_file() and not (job / "metrics.json").exists()
    assert "gallery" in json.loads((job / "failed.json").read_text())["error"]
    assert [r["status"] for r in leaderboard(sweep)] == ["failed"]
    proc = evaluate(*args, f"resume={sweep}")
    assert "it failed before, trying again: evaluating" in proc.stdout + proc.stderr


# ----------------------------------------------------------------------------- report


@pytest.mark.slow
def test_a_stopped_job_stays_out_of_the_finished_row_of_another_size(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    args = (*TINY, "data=demo,patchml", "preprocess.img_size=160,192")
    proc = evaluate("-m", *args, f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = leaderboard(sweep)  # one row per size: both datasets in it
    assert sorted((r["img_size"], r["status"]) for r in rows) == [("160", "done"), ("192", "done")]
    assert all(r["demo/num_images"] and r["patchml/num_images"] for r in rows)
    for job in sweep.glob("*img_size=192*"):
        (job / "metrics.json").unlink()  # as if the sweep was stopped in the 192 px jobs
    assert report([str(sweep), "--no-figures"]) == 0
    rows = leaderboard(sweep)
    assert [(r["img_size"], r["status"], r["settings"]) for r in rows] == [
        ("160", "done", "preprocess.img_size=160"),
        ("", "incomplete", "preprocess.img_size=192"),
    ]
    md = (sweep / "leaderboard.md").read_text()
    assert "| model | weights | settings |" in md and "| test_efficientnet | none |" in md


def test_report_and_readers_say_what_they_were_given(tmp_path: Path, capsys) -> None:
    sweep = tmp_path / "sweep"
    job = write_run(sweep / "a-x", "a", {"x": {"top1": 70.0}})
    (sweep / "multirun.yaml").write_text("{}\n")
    with pytest.raises(
        DataError, match="is a sweep folder: pass one of its job folders, e.g. "
    ) as e:
        RunDir(sweep)
    assert str(e.value).endswith(str(job))
    afile = tmp_path / "file.txt"
    afile.write_text("")
    assert report([str(sweep), "--out", str(afile)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: --out {afile} is a file: pass a folder to write the leaderboard to"]
    with pytest.raises(UserError, match="cannot sort by"):
        gather([sweep], sort="nope/top1")
    other = tmp_path / "gap-run"  # a finished run of another task: no empty leaderboard
    other.mkdir()
    (other / "metrics.json").write_text('{"x/gap": 1.0}')
    assert report([str(other), "--no-figures"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: no evaluation or train.py run to make a leaderboard of: ")
    assert not (other / "leaderboard.md").exists()


@pytest.mark.slow
def test_a_train_run_is_read_as_its_fine_tuned_model(tmp_path: Path, compose_cfg) -> None:
    out = tmp_path / "train"
    proc = train_py(
        "model=test_tiny",
        "callbacks=none",
        "num_workers=0",
        "trainer.max_epochs=1",
        "composites.train_images=32",
        "composites.eval_images=8",
        f"hydra.run.dir={out}",
        env=ONE_THREAD,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert report([str(out), "--no-figures", "--out", str(tmp_path / "board")]) == 0
    (row,) = leaderboard(tmp_path / "board")
    assert row["weights"] == f"fine-tuned:{out.resolve()}" and row["status"] == "done"
    assert float(row["single_photos/top1"]) == metrics["single_photos/finetuned.top1"]
    view = RunDir(out).view("finetuned")
    assert view.metrics["heldout_classes"]["top1"] == metrics["heldout_classes/finetuned.top1"]
    assert set(view.prediction_files) == set(view.metrics)  # no @pretrained ones

    from imagenet_multilabel.reports.gallery.build import write_gallery
    from imagenet_multilabel.reports.gallery.page import _pct

    page = write_gallery(out).read_text()  # the summary cards: the fine-tuned metrics
    for name in view.metrics:
        top1 = metrics[f"{name}/finetuned.top1"]
        assert f'<span class="v">{_pct(top1)}</span>' in page

    from imagenet_multilabel.tasks.gap import gap

    # the label-count subgroups of the fine-tuned model (finetuned.top1@labels=...)
    pair = (f"a={out}", f"b={out}", "a_dataset=heldout_classes", "b_dataset=heldout_classes")
    flat = gap(compose_cfg(*pair, config_name="gap"))
    assert flat["top1/gap"] == 0.0 and flat["vartopk_strict/gap"] == 0.0


# ------------------------------------------------------------------------- train.py sweeps


@pytest.mark.slow
def test_a_train_sweep_lists_a_failed_job_goes_on_and_resumes(tmp_path: Path) -> None:
    root = photos(tmp_path / "photos", 0, 100)
    sweep = tmp_path / "sweep"
    args = (
        "model=test_tiny",
        "callbacks=none",
        "num_workers=0",
        "logger=none",
        f"data.root={root}",
        "trainer.max_epochs=1",
        "composites.train_images=16",
        "composites.eval_images=6",
        "optim.lr=1e-3,-1",
    )
    proc = train_py("-m", *args, f"hydra.sweep.dir={sweep}", timeout=900, env=ONE_THREAD)
    assert proc.returncode == 1, proc.stderr[-3000:]
    # folder names are cut to 120 characters with a hash: find the jobs by what they hold
    bad = next(p.parent.name for p in sweep.glob("*/failed.json"))
    good = next(p.parent.name for p in sweep.glob("*/metrics.json"))
    assert json.loads((sweep / bad / "job.json").read_text())["identity"]["optim"]["lr"] == -1
    assert any(ln.startswith(f"error: job {bad} failed: ") for ln in proc.stderr.splitlines())
    assert proc.stderr.strip().splitlines()[-1] == f"error: 1 job(s) of the sweep failed: {bad}"
    assert (sweep / good / "metrics.json").is_file() and (sweep / bad / "failed.json").is_file()
    rows = leaderboard(sweep)  # the fine-tuned model's metrics; the failure listed
    assert sorted(r["status"] for r in rows) == ["done", "failed"]
    done = next(r for r in rows if r["status"] == "done")
    metrics = json.loads((sweep / good / "metrics.json").read_text())
    assert float(done["single_photos/top1"]) == metrics["single_photos/finetuned.top1"]

    proc = train_py(*args, f"resume={sweep}", timeout=900, env=ONE_THREAD)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "+resume" not in log
    assert f"{good}: complete results, skipped" in log
    assert f"{bad}: it failed before, trying again: running" in log


def test_leaderboard_md_tells_weights_apart(tmp_path: Path) -> None:
    """Two rows of one model, random and checkpoint weights: told apart in the md too."""
    sweep = tmp_path / "sweep"
    write_run(sweep / "a", "m", {"x": {"top1": 1.0}}, weights="none")
    ckpt = "checkpoint:/data/runs/2026-12-06_10-00-00/checkpoints/best.ckpt"
    write_run(sweep / "b", "m", {"x": {"top1": 50.0}}, weights=ckpt)
    md = gather([sweep]).to_markdown()
    assert "| 1 | m | checkpoint:...0-00/checkpoints/best.ckpt |" in md
    assert "| 2 | m | none |" in md
