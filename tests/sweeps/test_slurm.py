"""The shipped SLURM launcher (conf/hydra/launcher/submitit_slurm.yaml) against a real
Slurm started on this machine (the ``slurm_cluster`` fixture, with accounting: ``sacct``
answers as on a real cluster): two nodes, each a slurmd of this machine; jobs go to the
first alone unless they ask for partition ``all``. Small: the tiny test models on demo
photos."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from imagenet_multilabel.runs.rundir import RunDir
from tests.helpers import DEMO_PHOTOS, ONE_THREAD, evaluate_py, start
from tests.sweeps.slurm_cluster import PARTITION_ALL

# 23 photos in batches of 5: 5 batches, the last one partial; 3 and 2 on two ranks
COMMON = (
    "model=test_tiny",
    "data=demo",
    "batch_size=5",
    "num_workers=0",
    "callbacks=none",
    "logger=none",
)
SLURM = ("hydra/launcher=submitit_slurm", "hydra.launcher.cpus_per_task=1")
MODELS = ("test_batch_sensitive", "test_efficientnet")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("slurm_photos")
    for photo in DEMO_PHOTOS[:23]:
        shutil.copyfile(photo, root / photo.name)
    return root


@pytest.fixture(scope="module")
def one_process(photos, tmp_path_factory) -> dict[str, RunDir]:
    """The runs of both MODELS in one local process: what every DDP job must equal."""
    sweep = tmp_path_factory.mktemp("one_process") / "sweep"
    proc = evaluate_py(
        "-m",
        *COMMON,
        f"data.root={photos}",
        f"model.name={','.join(MODELS)}",
        f"hydra.sweep.dir={sweep}",
        env=ONE_THREAD,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = runs_by_model(sweep)
    assert sorted(runs) == sorted(MODELS)
    assert all(run.info["trainer"]["world_size"] == 1 for run in runs.values())
    return runs


def assert_bits_equal(run: RunDir, reference: RunDir) -> None:
    """Metrics and every array of the predictions bit for bit those of ``reference``."""
    np.testing.assert_equal(run.metrics, reference.metrics)
    mine, theirs = run.predictions("demo"), reference.predictions("demo")
    assert mine.keys() == theirs.keys()
    for key in mine:
        assert np.array_equal(mine[key], theirs[key]), (run.path, key)


def evaluate(cluster, *args: str, timeout: int = 600):
    return evaluate_py(*args, timeout=timeout, env={**ONE_THREAD, **cluster.env_overrides})


def runs_by_model(sweep: Path) -> dict[str, RunDir]:
    runs = {}
    for job in sweep.iterdir():
        if (job / "run.json").is_file():
            runs[json.loads((job / "run.json").read_text())["model"]["name"]] = RunDir(job)
    return runs


def submissions(sweep: Path) -> list[str]:
    """The sbatch scripts submitit wrote for the sweep's jobs."""
    return [p.read_text() for p in sorted((sweep / ".submitit").glob("*/*_submission.sh"))]


def sacct_states(cluster, sweep: Path, timeout: float = 60) -> dict[str, str]:
    """The sweep's jobs' states in SLURM's accounting, once final (submitit reads a job's
    result as soon as it is written; SLURM marks the job finished a moment later)."""
    ids = sorted({p.parent.name.split("_")[0] for p in (sweep / ".submitit").glob("*/*.sh")})
    deadline = time.monotonic() + timeout
    while True:
        out = cluster.run("sacct", "-X", "-n", "-P", "-o", "JobID,State", "-j", ",".join(ids))
        states = dict(line.split("|", 1) for line in out.split())
        if time.monotonic() > deadline or not {"PENDING", "RUNNING", "COMPLETING"} & set(
            states.values()
        ):
            return states
        time.sleep(1)


# -- the allocation follows the trainer -------------------------------------------------


@pytest.mark.filterwarnings(r"ignore:\s*'hydra/launcher/submitit_slurm' is validated")
def test_gpus_per_node_follows_the_accelerator() -> None:
    """Composed (no cluster): a CPU trainer asks for no GPUs, any other for its devices."""
    from hydra import compose, initialize_config_dir

    from imagenet_multilabel.core import distributed  # noqa: F401  (registers the resolvers)
    from imagenet_multilabel.core.config import CONFIG_DIR

    asked = {}
    for accelerator in ("cpu", "gpu", "auto"):
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            cfg = compose(
                "evaluate",
                [
                    "hydra/launcher=submitit_slurm",
                    "trainer=ddp",
                    f"trainer.accelerator={accelerator}",
                    "trainer.devices=3",
                ],
                return_hydra_config=True,
            )
        launcher = cfg.hydra.launcher
        asked[accelerator] = (launcher.gpus_per_node, launcher.tasks_per_node)
    assert asked == {"cpu": (None, 3), "gpu": (3, 3), "auto": (3, 3)}


def test_no_schema_warning_when_the_launcher_is_composed() -> None:
    """conf/hydra/launcher/submitit_*.yaml replace the plugin's schemas of the same name:
    Hydra's deprecation warning about it is not shown (warnings on, as for a user)."""
    show = ("--cfg", "hydra", "-p", "hydra.launcher")
    for launcher in ("submitit_slurm", "submitit_local"):
        proc = evaluate_py(
            f"hydra/launcher={launcher}", *show, env={"PYTHONWARNINGS": None}, timeout=120
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "_target_" in proc.stdout
        assert proc.stderr.strip() == "", proc.stderr


def test_submitits_sacct_warning_is_shown_once(caplog) -> None:
    """Where SLURM has no accounting every status poll of submitit fails with a warning;
    the first is shown, the others are dropped."""
    import logging

    from imagenet_multilabel.entry import run as cli  # noqa: F401  (installs the filter)

    logger = logging.getLogger("submitit")
    with caplog.at_level(logging.WARNING, logger="submitit"):
        for call in range(1, 4):
            logger.warning(f"Call #{call} - Bypassing sacct error boom, status may be inaccurate.")
        logger.warning("something else")
    messages = [r.getMessage() for r in caplog.records if r.name == "submitit"]
    assert messages == [
        "Call #1 - Bypassing sacct error boom, status may be inaccurate. (shown once)",
        "something else",
    ]


def test_sbatch_refusals_name_the_setting() -> None:
    from hydra_plugins.imagenet_multilabel_launcher.slurm import refusal_line

    gres = "sbatch: error: Invalid generic resource (gres) specification"
    partition = (
        "sbatch: error: invalid partition specified: gpu\n"
        "sbatch: error: Batch job submission failed: Invalid partition name specified"
    )
    assert refusal_line(gres) == (
        "SLURM refused the job (sbatch: Invalid generic resource (gres) specification): "
        "hydra.launcher.gpus_per_node / hydra.launcher.gres ask for what the cluster lacks: "
        "trainer.accelerator=cpu asks for no GPUs, or set them to what `sinfo -o '%P %G'` lists"
    )
    line = refusal_line(partition)
    assert line.startswith("SLURM refused the job (sbatch: invalid partition specified: gpu)")
    assert "hydra.launcher.partition" in line and "\n" not in line


@pytest.mark.slow
@pytest.mark.slurm
def test_cpu_trainer_asks_slurm_for_no_gpus(slurm_cluster, photos, tmp_path) -> None:
    """The shipped config as it is (the CPU trainer, one device) on a CPU partition: the
    job asks for no GPUs, runs and completes (sacct)."""
    sweep = tmp_path / "sweep"
    proc = evaluate(
        slurm_cluster, "-m", *SLURM, *COMMON, f"data.root={photos}", f"hydra.sweep.dir={sweep}"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (script,) = submissions(sweep)
    assert "--ntasks-per-node=1" in script
    assert "gpu" not in script and "gres" not in script
    assert list(sacct_states(slurm_cluster, sweep).values()) == ["COMPLETED"]
    assert "validated against ConfigStore schema" not in proc.stderr + proc.stdout
    (run,) = runs_by_model(sweep).values()
    assert run.metrics["demo"]["num_images"] == 23


# -- DDP jobs through SLURM give one process's numbers ---------------------------------


@pytest.mark.slow
@pytest.mark.slurm
@pytest.mark.ddp
def test_ddp_jobs_through_slurm_equal_one_process(
    slurm_cluster, photos, one_process, tmp_path
) -> None:
    """2 models x trainer=ddp trainer.devices=2 as SLURM jobs (2 tasks each, rank =
    SLURM_PROCID): metrics and predictions bit for bit those of one local process; rank
    1's log beside rank 0's."""
    data = (*COMMON, f"data.root={photos}", f"model.name={','.join(MODELS)}")
    slurm = tmp_path / "slurm"
    proc = evaluate(
        slurm_cluster,
        "-m",
        *SLURM,
        *data,
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        f"hydra.sweep.dir={slurm}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (script,) = submissions(slurm)  # one job array
    assert "--array=0-1" in script and "--ntasks-per-node=2" in script and "gpu" not in script
    assert list(sacct_states(slurm_cluster, slurm).values()) == ["COMPLETED"] * 2
    through_slurm = runs_by_model(slurm)
    assert sorted(through_slurm) == sorted(MODELS)
    for name, run in through_slurm.items():
        assert run.info["trainer"]["world_size"] == 2
        assert sorted(p.name for p in run.path.glob("*.log")) == [
            "evaluate.log",
            "evaluate.rank1.log",
        ]
        assert "wrote" in (run.path / "evaluate.log").read_text()
        assert_bits_equal(run, one_process[name])
    assert (slurm / "leaderboard.md").is_file()


@pytest.mark.slow
@pytest.mark.slurm
@pytest.mark.ddp
def test_a_two_node_job_equals_one_process(slurm_cluster, photos, one_process, tmp_path) -> None:
    """trainer.num_nodes=2 trainer.devices=1: one SLURM job of 2 nodes, one task on each
    (two slurmd of this machine; node rank = SLURM_NODEID, rank = SLURM_PROCID): the
    batch-sensitive model's metrics and predictions bit for bit those of one process."""
    sweep = tmp_path / "sweep"
    proc = evaluate(
        slurm_cluster,
        "-m",
        *SLURM,
        *COMMON,
        f"data.root={photos}",
        f"model.name={MODELS[0]}",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.num_nodes=2",
        "trainer.devices=1",
        f"hydra.launcher.partition={PARTITION_ALL}",
        f"hydra.sweep.dir={sweep}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (script,) = submissions(sweep)
    assert "--nodes=2" in script and "--ntasks-per-node=1" in script, script
    ((job, state),) = sacct_states(slurm_cluster, sweep).items()
    assert state == "COMPLETED"
    # the step of the tasks (submitit's srun): 2 tasks on the 2 nodes
    steps = slurm_cluster.run("sacct", "-n", "-P", "-o", "JobID,NNodes,NTasks,NodeList", "-j", job)
    print(f"job {job} (JobID|NNodes|NTasks|NodeList):\n{steps.strip()}")
    (step,) = [line.split("|") for line in steps.split() if line.startswith(f"{job}.0|")]
    assert step[1:3] == ["2", "2"], steps
    hosts = slurm_cluster.run("scontrol", "show", "hostnames", step[3]).split()
    assert hosts == slurm_cluster.node_names, steps
    (run,) = runs_by_model(sweep).values()
    trainer = run.info["trainer"]
    assert (trainer["num_nodes"], trainer["devices"], trainer["world_size"]) == (2, 1, 2)
    assert sorted(p.name for p in run.path.glob("*.log")) == ["evaluate.log", "evaluate.rank1.log"]
    assert_bits_equal(run, one_process[MODELS[0]])


# -- SLURM refuses a job ---------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.slurm
@pytest.mark.parametrize(
    ("override", "setting"),
    [
        ("hydra.launcher.partition=nosuchpartition", "hydra.launcher.partition"),
        ("trainer.accelerator=gpu", "hydra.launcher.gpus_per_node"),  # no GPU on the cluster
    ],
)
def test_a_job_slurm_refuses_is_one_line(
    slurm_cluster, photos, tmp_path, override: str, setting: str
) -> None:
    proc = evaluate(
        slurm_cluster,
        "-m",
        *SLURM,
        *COMMON,
        f"data.root={photos}",
        override,
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    print(f"exit {proc.returncode}: {proc.stderr.strip()}")
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: SLURM refused the job (sbatch: ") and setting in lines[0]


# -- a job cancelled while it runs -------------------------------------------------------


def _wait_for_a_running_job(cluster, sweep: Path, timeout: float = 300) -> str:
    """A running job of ``sweep`` (submitit's folder of each job is .submitit/<job id>;
    jobs of earlier tests may still be finishing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in cluster.run("squeue", "-h", "-o", "%i %T").splitlines():
            job, state = line.split()
            if state == "RUNNING" and (sweep / ".submitit" / job).is_dir():
                return job
        time.sleep(0.5)
    raise AssertionError("no job of the sweep started running")


@contextlib.contextmanager
def _running_sweep(cluster, sweep: Path, *args: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """``evaluate.py *args`` started in the background with its sweep folder ``sweep``, and
    the SLURM id of its first running job; the process is killed on the way out, so a
    failing test leaves no sweep behind."""
    with start(
        ["evaluate.py", *args, f"hydra.sweep.dir={sweep}"],
        env={**ONE_THREAD, **cluster.env_overrides},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            yield proc, _wait_for_a_running_job(cluster, sweep)
        finally:
            proc.kill()


@pytest.mark.slow
@pytest.mark.slurm
def test_a_cancelled_job_fails_alone_and_resume_runs_it(slurm_cluster, photos, tmp_path) -> None:
    """scancel of a running job: the sweep does not hang, the job is a failed job of the
    leaderboard (reason: cancelled), the other jobs finish; resume= runs it again."""
    sweep = tmp_path / "sweep"
    args = (
        "-m",
        *SLURM,
        *COMMON,
        f"data.root={photos}",
        "model.name=test_efficientnet,test_batch_sensitive,test_efficientnet_gn",
    )
    with _running_sweep(slurm_cluster, sweep, *args) as (proc, job):
        print(slurm_cluster.run("sinfo"))
        slurm_cluster.run("scancel", job)
        for _ in range(20):  # what accounting shows once the job is cancelled
            listed = slurm_cluster.run("sacct", "-j", job, "-o", "JobID,JobName,State")
            if "CANCELLED" in listed:
                break
            time.sleep(1)
        print(listed)
        err = proc.communicate(timeout=300)[1]  # no hang
    assert proc.returncode == 1, err[-3000:]  # a sweep with a failed job, once its table is written
    assert f"SLURM job {job} ended without a result: cancelled" in err, err[-3000:]
    assert err.strip().splitlines()[-1].startswith("error: 1 job(s) of the sweep failed: ")
    failed = [p.parent for p in sweep.glob("*/failed.json")]
    done = [p.parent for p in sweep.glob("*/metrics.json")]
    assert len(failed) == 1 and len(done) == 2, err[-3000:]
    reason = json.loads((failed[0] / "failed.json").read_text())["error"]
    assert reason.startswith(f"SLURM job {job} ended without a result: cancelled")
    board = (sweep / "leaderboard.md").read_text()
    assert "cancelled" in board and board.count("| done") == 2, board
    first = {d: (d / "metrics.json").read_bytes() for d in done}

    proc = evaluate(slurm_cluster, *args, f"resume={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.parent for p in sweep.glob("*/metrics.json")) == sorted([*done, *failed])
    assert not list(sweep.glob("*/failed.json"))
    assert all((d / "metrics.json").read_bytes() == first[d] for d in done)  # skipped
    assert "cancelled" not in (sweep / "leaderboard.md").read_text()


# -- a job requeued while it runs --------------------------------------------------------


@pytest.mark.slow
@pytest.mark.slurm
def test_a_requeued_job_starts_over_and_the_sweep_equals_an_uninterrupted_one(
    slurm_cluster, photos, one_process, tmp_path
) -> None:
    """scontrol requeue of a running job (as a pre-empted job is requeued): the job runs
    again from the start in its own folder; the sweep's results equal those of a sweep
    that nobody interrupted (``one_process``: the same sweep, run locally)."""
    args = (*COMMON, f"data.root={photos}", f"model.name={','.join(MODELS)}")
    sweep = tmp_path / "sweep"
    with _running_sweep(slurm_cluster, sweep, "-m", *SLURM, *args) as (proc, job):
        slurm_cluster.run("scontrol", "requeue", job)
        time.sleep(1)  # SLURM holds a requeued job 2 minutes: let it start at once
        slurm_cluster.run("scontrol", "update", f"JobId={job}", "StartTime=now", check=False)
        err = proc.communicate(timeout=400)[1]
    assert proc.returncode == 0, err[-3000:]
    # the job's two runs in SLURM's accounting, once the second is recorded as finished
    for _ in range(60):
        history = slurm_cluster.run(
            "sacct", "-D", "-X", "-P", "-o", "JobID,State,Start,End", "-j", job
        )
        if history.strip().endswith(("COMPLETED", "FAILED", "CANCELLED")):
            break
        time.sleep(1)
    print(f"requeued {job}:\n{history}")
    states = [line.split("|")[1] for line in history.strip().splitlines()[1:]]
    assert states == ["REQUEUED", "COMPLETED"], history
    assert not list(sweep.glob("*/failed.json"))
    assert len(list(sweep.glob("*/run.json"))) == len(MODELS)  # each job in its own folder
    requeued = runs_by_model(sweep)
    assert sorted(requeued) == sorted(one_process) == sorted(MODELS)
    for name, run in requeued.items():
        assert_bits_equal(run, one_process[name])
