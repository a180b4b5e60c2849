"""Distributed evaluation: exact numbers on 1, 2 and 3 processes (CPU, gloo), one output
directory per run and per multirun job, per-rank logs, a failing rank ending the job.

The slow tests run ``evaluate.py`` as a command (Lightning re-launches ranks > 0), on an
odd number of real photos so that shards are uneven. Every run gets ``OMP_NUM_THREADS=1``:
on CPU, oneDNN's float results depend on the number of threads of a process, and
Lightning would give 2 threads to one process but 1 each to two (docs/distributed.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from imagenet_multilabel.core import distributed
from imagenet_multilabel.core.errors import DataError
from imagenet_multilabel.data.loading.module import EvalDataModule
from imagenet_multilabel.runs.rundir import RunDir
from tests.helpers import (
    DEMO_CLASSES,
    HAVE_SAMPLE,
    ONE_THREAD,
    assert_counted_images,
    evaluate_py,
    folder_image_ids,
    make_wnid_folders,
    photo,
    read_label_json,
    start,
)

# test_batch_sensitive: the tiny test model plus a term from the whole batch, so that an
# image computed in another batch than on one process gets other logits on any machine
TINY = (
    "model=test_tiny",
    "model.name=test_batch_sensitive",
    "callbacks=none",
    "trainer=ddp",
    "trainer.accelerator=cpu",
)


# -- fast ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "suffix"),
    [
        ({}, ""),
        ({"LOCAL_RANK": "0", "NODE_RANK": "0"}, ""),
        ({"LOCAL_RANK": "2", "NODE_RANK": "0", "WORLD_SIZE": "4"}, ".rank2"),
        ({"LOCAL_RANK": "1", "NODE_RANK": "1"}, ".node1.rank1"),
        ({"SLURM_NTASKS": "16", "SLURM_PROCID": "9", "SLURM_LOCALID": "1"}, ".rank9"),
        ({"SLURM_NTASKS": "1", "SLURM_PROCID": "0"}, ""),
        ({"SLURM_NTASKS": "2", "SLURM_PROCID": "0"}, ""),
        ({"RANK": "3", "LOCAL_RANK": "1"}, ".rank3"),
    ],
)
def test_rank_suffix(env: dict[str, str], suffix: str) -> None:
    assert distributed.rank_suffix(env) == suffix


def test_rank_log_file(monkeypatch) -> None:
    for key in ("RANK", "SLURM_NTASKS", "NODE_RANK", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert distributed.rank_log_file("/run/evaluate.log", 2) == "/run/evaluate.rank2.log"


def test_job_file_holds_the_resolved_job(compose_cfg, tmp_path: Path) -> None:
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import read_write

    from imagenet_multilabel.tasks.evaluate import evaluate

    cfg = compose_cfg("model=test_tiny", "trainer=ddp")
    with read_write(cfg.hydra):
        cfg.hydra.runtime.output_dir = str(tmp_path / "run")  # as Hydra's run_job sets it
    HydraConfig.instance().set_config(cfg)

    with distributed.hydra_job(evaluate, cfg):
        command, cwd = distributed.rank_command(1)
    assert command[:3] == [sys.executable, "-m", "imagenet_multilabel.entry.rank_worker"]
    assert cwd == os.getcwd()
    from omegaconf import OmegaConf

    job = OmegaConf.load(command[3])
    assert job.task == "imagenet_multilabel.tasks.evaluate:evaluate"
    assert job.config.paths.output_dir == str(tmp_path / "run")
    assert job.config.model.name == "test_efficientnet"
    assert job.logging.handlers.file.filename == str(tmp_path / "run" / "evaluate.rank1.log")


class _Broken(Dataset):
    def __len__(self) -> int:
        return 10

    def __getitem__(self, index: int) -> dict:
        if index == 6:
            raise DataError("cannot decode image 6.JPEG")
        return {"image": torch.zeros(3), "target": 0, "index": index}


class _Good(_Broken):
    def __getitem__(self, index: int) -> dict:
        return {"image": torch.zeros(3), "target": 0, "index": index}


def test_loader_stops_at_first_error_and_keeps_it() -> None:
    module = EvalDataModule({"a": _Broken(), "b": _Broken()}, batch_size=2, num_workers=0)
    first, second = module.val_dataloader()
    batches = list(first)
    assert [b["index"].tolist() for b in batches] == [[0, 1], [2, 3], [4, 5]]
    assert isinstance(module.failure, DataError)
    assert list(second) == []  # a failed rank stops at once
    with pytest.raises(DataError, match="6.JPEG"):
        distributed.raise_if_any_rank_failed(module.failure)  # one process: as it is


def test_a_rank_without_a_batch_still_runs_its_validation_epoch() -> None:
    """10 images in one batch of 16 on 2 ranks: rank 1 has no batch. Its loader says 1 (a
    length of 0 would make Lightning skip the epoch's end, where all ranks gather) and
    yields nothing; rank 0's has the batch."""
    from imagenet_multilabel.data.loading.module import ShardBatches, StopOnError

    loaders = [
        StopOnError(_Good(), failure={}, batch_sampler=ShardBatches(10, 16, rank, 2))
        for rank in range(2)
    ]
    assert [len(loader) for loader in loaders] == [1, 1]
    assert [b["index"].tolist() for b in loaders[0]] == [list(range(10))]
    assert list(loaders[1]) == []


# -- slow: several processes ------------------------------------------------------------


def _gather_worker(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist

    from imagenet_multilabel.scoring.metrics.buffer import PredictionBuffer

    url = f"tcp://127.0.0.1:{port}"
    dist.init_process_group("gloo", init_method=url, rank=rank, world_size=world)
    torch.set_num_threads(1)
    results = {}
    for size in (2, 7):  # 2 images on 3 ranks: rank 2 has none
        # 7 logit columns for 5 classes (valid labels), as the features pass stores them
        buffer = PredictionBuffer(size, with_valid=True, num_classes=7, valid_classes=5)
        index = torch.arange(rank, size, world)
        if len(index):
            logits = index[:, None].float() + torch.arange(7.0)
            valid = (torch.arange(5)[None, :] <= index[:, None] % 5).to(torch.uint8)
            buffer.update(index, logits, index % 5, valid)
        preds = buffer.compute()
        results[size] = (preds.logits, preds.target, preds.valid)
    torch.save(results, f"{out}/{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.ddp
def test_buffer_gathers_uneven_and_empty_shards(tmp_path: Path) -> None:
    from lightning.fabric.plugins.environments.lightning import find_free_network_port

    world = 3
    torch.multiprocessing.start_processes(  # fork: no re-import, seconds instead of a minute
        _gather_worker,
        args=(world, find_free_network_port(), str(tmp_path)),
        nprocs=world,
        start_method="fork",
    )
    for rank in range(world):
        results = torch.load(tmp_path / f"{rank}.pt")
        for size, (logits, target, valid) in results.items():
            index = torch.arange(size)
            assert torch.equal(logits, index[:, None].float() + torch.arange(7.0))
            assert torch.equal(target, index % 5)
            assert torch.equal(valid, torch.arange(5)[None, :] <= index[:, None] % 5)


def run_evaluate(*args: str, timeout: int = 420) -> subprocess.CompletedProcess:
    """``python evaluate.py args...``, one torch thread per process (module docstring)."""
    return evaluate_py(*args, timeout=timeout, env=ONE_THREAD)


@pytest.fixture(scope="module")
def photos_101(tmp_path_factory) -> Path:
    """101 real photos in wnid folders (uneven shards on 2 and 3), nearly all of their
    folder's class: every 9th class of the sample, or the 100 demo photos and one more."""
    classes = list(range(0, 1000, 9))[:101] if HAVE_SAMPLE else [*DEMO_CLASSES, 1]
    return make_wnid_folders(tmp_path_factory.mktemp("p101") / "val", classes)


def sweep_jobs(sweep: Path) -> list[Path]:
    """A sweep's job folders (named by their overrides) in job-number order."""
    from omegaconf import OmegaConf

    jobs = [p for p in sweep.iterdir() if (p / ".hydra" / "hydra.yaml").is_file()]
    return sorted(jobs, key=lambda p: OmegaConf.load(p / ".hydra" / "hydra.yaml").hydra.job.num)


def _results(run_dir: Path, dataset: str = "folder") -> tuple[dict, dict[str, np.ndarray]]:
    """A run's metrics of ``dataset`` and its predictions of it."""
    run = RunDir(run_dir)
    return run.metrics[dataset], run.predictions(dataset)


def _assert_identical_runs(
    job_dirs: list[Path], num_images: int, dataset: str = "folder", root: Path | None = None
) -> None:
    """Bit-identical metrics and predictions; with the data's ``root``, each run's
    metrics.json records the same image set: the folder's images, by their sorted ids."""
    assert len(set(job_dirs)) == len(job_dirs)  # each run its own folder
    if root is not None:
        ids = folder_image_ids(root)
        assert len({assert_counted_images(d, dataset, ids) for d in job_dirs}) == 1
    (metrics0, preds0), *others = [_results(d, dataset) for d in job_dirs]
    assert metrics0["num_images"] == num_images
    assert len(preds0["index"]) == num_images  # read_predictions: complete, dataset order
    for metrics, preds in others:
        assert metrics.keys() == metrics0.keys()
        np.testing.assert_equal(metrics, metrics0)  # every metric, exactly (NaN == NaN)
        assert preds.keys() == preds0.keys()
        for key in preds0:
            assert np.array_equal(preds[key], preds0[key]), key


@pytest.mark.slow
@pytest.mark.ddp
def test_1_2_3_processes_give_identical_results_in_a_multirun(tmp_path, photos_101) -> None:
    """One multirun, three jobs with 1, 2 and 3 DDP processes: each job's ranks share the
    job's directory; metrics and per-image predictions are the same, bit for bit."""
    sweep = tmp_path / "sweep"
    proc = run_evaluate(
        "-m",
        *TINY,
        "data=folder",
        f"data.root={photos_101}",
        "trainer.devices=1,2,3",
        "batch_size=16",  # 101 = 6 x 16 + 5; shards of 51/50 and 34/34/33: partial batches
        "num_workers=0",
        f"hydra.sweep.dir={sweep}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sweep_jobs(sweep)
    assert (sweep / "multirun.yaml").is_file() and (sweep / "leaderboard.md").is_file()
    for job, world in zip(jobs, (1, 2, 3), strict=True):
        run = json.loads((job / "run.json").read_text())
        assert run["trainer"]["world_size"] == world
        logs = sorted(p.name for p in job.glob("*.log"))
        assert logs == ["evaluate.log"] + [f"evaluate.rank{r}.log" for r in range(1, world)]
        assert "wrote" in (job / "evaluate.log").read_text()
        assert (job / ".hydra" / "config.yaml").is_file()
    _assert_identical_runs(jobs, 101, root=photos_101)


def _files_with_label_set(root: Path) -> tuple[Path, Path, dict[str, list[int]]]:
    """23 real photos, some in subfolders, with a single-label file and a multi-label file
    (label sets of 0 to 6 classes, the single label not always among them)."""
    rng = np.random.default_rng(7)
    single, multi = {}, {}
    for i, cls in enumerate(range(3, 960, 43)):
        name = f"{'ab'[i % 2]}/img{i:02d}.jpg" if i % 3 else f"img{i:02d}.jpg"
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(photo(cls).read_bytes())
        single[name] = cls
        extra = rng.choice(1000, size=1 + i % 5, replace=False).tolist()
        multi[name] = sorted({cls, *extra} if i % 4 else set(extra))
    multi["img00.jpg"] = []  # an image without a valid label
    single_file, multi_file = root.parent / "single.json", root.parent / "multi.json"
    single_file.write_text(json.dumps(single))
    multi_file.write_text(json.dumps({n.rsplit("/", 1)[-1]: v for n, v in multi.items()}))
    return single_file, multi_file, multi


@pytest.mark.slow
@pytest.mark.ddp
def test_1_and_2_processes_identical_with_a_label_set(tmp_path: Path) -> None:
    """data=files + labels=file: single- and multi-label metrics, logits and the joined
    valid labels of 2 processes equal those of 1, bit for bit (uneven shards, partial
    batches, an unlabeled image)."""
    root = tmp_path / "images"
    single, multi, labels = _files_with_label_set(root)
    sweep = tmp_path / "sweep"
    proc = run_evaluate(
        "-m",
        *TINY,
        "data=files",
        f"data.root={root}",
        f"data.labels_file={single}",
        "labels=file",
        f"labels.path={multi}",
        "head=default",
        "trainer.devices=1,2",
        "batch_size=4",  # 23 = 5 x 4 + 3; shards of 12/11: partial batches
        "num_workers=0",
        f"hydra.sweep.dir={sweep}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sweep_jobs(sweep)
    for job, world in zip(jobs, (1, 2), strict=True):
        run = json.loads((job / "run.json").read_text())
        assert run["trainer"]["world_size"] == world
        assert run["datasets"]["files"]["labels"] == "file"
    _assert_identical_runs(jobs, 23, dataset="files")
    metrics, preds = _results(jobs[1], "files")
    assert {"real_top1", "vartopk_strict", "map_macro", "asma", "f1"} <= set(metrics)
    assert metrics["num_unlabeled"] == 1 and metrics["num_labeled"] == 22
    from_file = read_label_json(multi)
    for path, row in zip(preds["path"], preds["valid"], strict=True):
        assert np.flatnonzero(row).tolist() == from_file[path.rsplit("/", 1)[-1]]
    assert sorted(preds["path"]) == sorted(labels)


@pytest.mark.slow
@pytest.mark.ddp
def test_default_model_1_and_2_processes_identical(tmp_path, photos_101) -> None:
    """The real default model (tf_efficientnet_lite0, ImageNet weights), 1 vs 2 processes."""
    sweep = tmp_path / "sweep"
    proc = run_evaluate(
        "-m",
        "callbacks=none",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "data=folder",
        f"data.root={photos_101}",
        "trainer.devices=1,2",
        "batch_size=32",
        "num_workers=0",
        f"hydra.sweep.dir={sweep}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sweep_jobs(sweep)
    _assert_identical_runs(jobs, 101, root=photos_101)
    assert _results(jobs[0])[0]["top1"] > 50  # real weights, photos of their classes


@pytest.mark.slow
@pytest.mark.ddp
def test_a_failing_rank_ends_the_job_with_its_error(tmp_path: Path) -> None:
    """A corrupt JPEG that only rank 1 of 2 reads: exit code 2, one `error:` line, no
    metrics.json (nor predictions), no hang."""
    root = make_wnid_folders(tmp_path / "val", range(0, 1000, 90))  # 12 photos
    bad = sorted(root.glob("*/*.JPEG"))[3]  # index 3: batch 1 of 2 images, rank 1 of 2
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    run_dir = tmp_path / "run"
    proc = run_evaluate(
        *TINY,
        "trainer.devices=2",
        "data=folder",
        f"data.root={root}",
        "batch_size=2",
        "num_workers=1",
        f"hydra.run.dir={run_dir}",
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert lines[0].startswith("error: cannot decode image") and bad.name in lines[0]
    assert not (run_dir / "metrics.json").exists()
    assert not (run_dir / "predictions").exists()
    assert "rank 1 failed: cannot decode image" in (run_dir / "evaluate.rank1.log").read_text()


@pytest.mark.slow
@pytest.mark.ddp
def test_submitit_local_multirun_with_ddp_jobs(tmp_path: Path) -> None:
    """hydra/launcher=submitit_local: jobs run in submitit's processes, whose command line
    is not evaluate.py's; a DDP job still starts its ranks in its own directory. One batch
    for two ranks: rank 1 has no batch and still gathers."""
    root = make_wnid_folders(tmp_path / "val", range(0, 1000, 91))  # 11 photos
    sweep = tmp_path / "sweep"
    proc = run_evaluate(
        "-m",
        "hydra/launcher=submitit_local",
        *TINY,
        "data=folder",
        f"data.root={root}",
        "trainer.devices=1,2",
        "batch_size=16",  # one batch: rank 1 of 2 has none
        "num_workers=0",
        f"hydra.sweep.dir={sweep}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (sweep / ".submitit").is_dir()
    jobs = sweep_jobs(sweep)
    assert sorted(p.name for p in jobs[1].glob("*.log")) == [
        "evaluate.log",
        "evaluate.rank1.log",
    ]
    _assert_identical_runs(jobs, 11, root=root)


@pytest.mark.slow
@pytest.mark.ddp
def test_slurm_tasks_share_one_run_dir(tmp_path: Path) -> None:
    """What submitit_slurm starts: one process per rank, each running the Hydra job with
    SLURM's variables. Lightning takes the ranks from SLURM and starts nothing; one run
    directory, .hydra/ and results from rank 0, each rank its log."""
    root = make_wnid_folders(tmp_path / "val", range(0, 1000, 91))
    run_dir = tmp_path / "run"
    slurm = {
        "SLURM_NTASKS": "2",
        "SLURM_NTASKS_PER_NODE": "2",
        "SLURM_NODEID": "0",
        "SLURM_NODELIST": "localhost",
        "SLURM_JOB_ID": str(4000 + os.getpid() % 1000),
        "SLURM_JOB_NAME": "evaluate",
    }
    args = (
        *TINY,
        "trainer.devices=2",
        "data=folder",
        f"data.root={root}",
        "batch_size=4",
        "num_workers=0",
        f"hydra.run.dir={run_dir}",
    )
    procs = [
        start(
            ["evaluate.py", *args],
            env={**ONE_THREAD, **slurm, "SLURM_PROCID": str(r), "SLURM_LOCALID": str(r)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for r in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    assert sorted(p.name for p in run_dir.iterdir()) == [
        ".hydra",
        "csv",
        "evaluate.log",
        "evaluate.rank1.log",
        "metrics.json",
        "predictions",
        "run.json",
    ]
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in outputs[1]  # SLURM's rank, nothing spawned
    assert "wrote" in (run_dir / "evaluate.log").read_text()
    assert "wrote" not in (run_dir / "evaluate.rank1.log").read_text()
    assert RunDir(run_dir).metrics["folder"]["num_images"] == 11
    assert_counted_images(run_dir, "folder", folder_image_ids(root))


def test_the_lightning_internals_we_patch_still_exist() -> None:
    """distributed.hydra_job replaces Lightning's private ``_hydra_subprocess_cmd`` (called
    by name from the launcher's module) and its SIGTERM notifier (registered by name), and
    _detach_children empties ``launcher.procs``:
    a Lightning release that renames either must fail here, not in a user's DDP run."""
    import inspect

    from lightning.fabric.plugins.environments import LightningEnvironment
    from lightning.pytorch.strategies.launchers import subprocess_script
    from lightning.pytorch.trainer.connectors.signal_connector import _SignalConnector

    original = subprocess_script._hydra_subprocess_cmd
    observer = subprocess_script._launch_process_observer
    assert list(inspect.signature(original).parameters) == ["local_rank"]
    assert list(inspect.signature(observer).parameters) == ["child_processes"]
    source = inspect.getsource(subprocess_script)
    assert "_hydra_subprocess_cmd(local_rank)" in source
    assert "_launch_process_observer(self.procs)" in source
    launcher = subprocess_script._SubprocessScriptLauncher(LightningEnvironment(), 2, 1)
    assert launcher.procs == []
    notifier = _SignalConnector._sigterm_notifier_fn
    assert list(inspect.signature(notifier).parameters) == ["self", "signum", "_"]
    assert "_sigterm_notifier_fn]" in inspect.getsource(_SignalConnector.register_signal_handlers)
    with distributed.hydra_job(test_the_lightning_internals_we_patch_still_exist, None):
        assert subprocess_script._hydra_subprocess_cmd is distributed.rank_command
        assert subprocess_script._launch_process_observer is distributed.observe_children
        assert _SignalConnector._sigterm_notifier_fn is distributed.note_sigterm
    assert subprocess_script._hydra_subprocess_cmd is original
    assert subprocess_script._launch_process_observer is observer
    assert _SignalConnector._sigterm_notifier_fn is notifier
