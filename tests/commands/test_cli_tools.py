"""The analysis commands as a user runs them: ``python -m imagenet_multilabel score``,
``...stats`` and ``...gap`` on a run that ``python evaluate.py`` made in the test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import command, error_line, evaluate_py, make_wnid_folders, run_metrics

DATASET = "files"  # the dataset of the evaluated run
NUM_IMAGES = 12

pytestmark = pytest.mark.slow


def _label_file(path: Path, files: list[str], sizes: tuple[int, ...]) -> Path:
    """Each file labelled with its own class and the next ones, ``sizes`` cycling."""
    labels = {}
    for i, name in enumerate(files):
        cls = int(name.split("_")[1].split(".")[0])
        labels[name] = [cls + j for j in range(sizes[i % len(sizes)])]
    path.write_text(json.dumps(labels))
    return path


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> dict[str, Path]:
    """An evaluate.py run on 12 photos with a label file of 1, 2 and 3 labels per image,
    and a second label file of 1 and 2 labels per image."""
    tmp = tmp_path_factory.mktemp("cli")
    root = make_wnid_folders(tmp / "val", range(5, 1000, 83))
    files = sorted(p.relative_to(root).as_posix() for p in root.glob("*/*.JPEG"))
    assert len(files) == NUM_IMAGES
    single = tmp / "single.json"
    single.write_text(json.dumps({f: f.split("/")[0] for f in files}))
    names = [f.split("/")[1] for f in files]
    paths = {
        "a_labels": _label_file(tmp / "a.json", names, (1, 2, 3)),
        "b_labels": _label_file(tmp / "b.json", names, (1, 2)),
        "run": tmp / "run",
        "tmp": tmp,
    }
    proc = evaluate_py(
        "model=test_tiny",
        "data=files",
        f"data.root={root}",
        f"data.labels_file={single}",
        "labels=file",
        f"labels.path={paths['a_labels']}",
        "num_workers=0",
        f"hydra.run.dir={paths['run']}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert run_metrics(paths["run"], DATASET)["num_images@labels=3"] == NUM_IMAGES // 3
    return paths


@pytest.fixture(scope="module")
def scored(evaluated) -> dict:
    """The evaluated run re-scored by the score command with the second label file."""
    run, out = evaluated["run"], evaluated["tmp"] / "score"
    before = (run / "metrics.json").read_bytes()
    proc = command(
        "score",
        f"run_dir={run}",
        "labels=file",
        f"labels.path={evaluated['b_labels']}",
        f"hydra.run.dir={out}",
    )
    return {"proc": proc, "out": out, "run_metrics_before": before}


def test_score_command_rescores_with_another_label_set(evaluated, scored) -> None:
    run, out, proc = evaluated["run"], scored["out"], scored["proc"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {"metrics.json", "run.json", ".hydra", "score.log"} <= {p.name for p in out.iterdir()}
    assert (run / "metrics.json").read_bytes() == scored["run_metrics_before"]  # left alone
    new, original = run_metrics(out, DATASET), run_metrics(run, DATASET)
    assert new["num_images@labels=1"] == new["num_images@labels=2"] == NUM_IMAGES // 2
    assert new["num_images@labels=3"] == 0
    assert new["top1"] == original["top1"] and new["nll"] == original["nll"]
    info = json.loads((out / "run.json").read_text())
    assert info["task"] == "score" and info["source_run"] == str(run.resolve())


def test_stats_command_writes_its_tables(evaluated) -> None:
    out = evaluated["tmp"] / "stats"
    proc = command(
        "stats",
        "labels=file",
        f"labels.path={evaluated['a_labels']}",
        "compare=[multilabelfy]",
        f"hydra.run.dir={out}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {"stats.json", "label_stats.txt", "label_counts.png"} <= {p.name for p in out.iterdir()}
    saved = json.loads((out / "stats.json").read_text())
    assert set(saved) == {"file", "multilabelfy", "compared"}  # compared: on common images
    assert saved["file"]["images"] == NUM_IMAGES and saved["multilabelfy"]["images"] == 10_000
    assert (out / "label_counts.png").read_bytes()[:4] == b"\x89PNG"
    assert "multilabelfy" in proc.stdout


def test_gap_command_between_two_runs(evaluated, scored) -> None:
    """gap between the evaluated run (1-3 labels per image) and its re-scoring with the
    second label file (1-2 labels): both hold the same logits, so their top-1 is equal."""
    a, b, out = evaluated["run"], scored["out"], evaluated["tmp"] / "gap"
    assert scored["proc"].returncode == 0, scored["proc"].stderr[-3000:]
    proc = command("gap", f"a={a}", f"b={b}", f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {"gap.json", "gap.md", "gap.png"} <= {p.name for p in out.iterdir()}
    rows = {r["metric"]: r for r in json.loads((out / "gap.json").read_text())["rows"]}
    top1 = run_metrics(a, DATASET)["top1"]
    assert rows["top1"]["a"] == pytest.approx(top1) and rows["top1"]["b"] == pytest.approx(top1)
    assert rows["top1"]["gap"] == pytest.approx(0, abs=1e-9)
    assert "| top1 |" in (out / "gap.md").read_text()


def test_command_bad_input_is_one_line(tmp_path) -> None:
    proc = command("score", "run_dir=/nonexistent/run", f"hydra.run.dir={tmp_path / 'out'}")
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "/nonexistent/run" in lines[0]
    assert not (tmp_path / "out" / "metrics.json").exists()


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ("model=resnet5", "Could not find 'model/resnet5'"),  # a config option
        ("batchsize=16", "Could not override 'batchsize'"),  # a key
        ("data.root=/photos (2024), v2", "quote a value"),  # an unparseable override
        ("hydra.run.dir=/etc/passwd/run", "choose another hydra.run.dir"),  # under a file
    ],
)
def test_hydra_errors_are_one_line(override: str, says: str) -> None:
    """Hydra's own errors end as the tasks' do: one line, exit code 2 (not Hydra's several
    lines and exit code 1)."""
    proc = evaluate_py("model=test_tiny", override)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert says in error_line(proc)


def test_a_failed_rerun_leaves_no_earlier_result(tmp_path: Path) -> None:
    """A run in a reused folder that fails its first checks does not leave the earlier
    run's metrics.json beside its own config ("metrics.json means finished")."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text('{"demo/top1": 88.0}')
    proc = evaluate_py("model=test_tiny", "batch_size=0", f"hydra.run.dir={run}")
    assert proc.returncode == 2 and "batch_size=0" in error_line(proc)
    assert not (run / "metrics.json").exists()


def test_only_hydras_own_errors_become_its_line(monkeypatch, capsys) -> None:
    """Before the task, an OSError naming a file is the run folder Hydra could not create;
    once the task has started, the same error is the task's and keeps its traceback."""
    from imagenet_multilabel.entry import run as cli

    def main() -> None:
        raise FileNotFoundError(2, "No such file or directory", "/x/run")

    monkeypatch.setattr(cli, "_task_started", False)
    with pytest.raises(SystemExit) as exited:
        cli.hydra_main(main)
    assert exited.value.code == 2
    assert capsys.readouterr().err.startswith("error: cannot write /x/run (No such file")
    monkeypatch.setattr(cli, "_task_started", True)
    with pytest.raises(FileNotFoundError):
        cli.hydra_main(main)
