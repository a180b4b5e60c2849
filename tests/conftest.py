"""Shared fixtures: composed Hydra configs in tmp dirs, and real photos for any class.

The suite runs on a plain clone. Photos come from the 1000-photo ImageNet sample beside the
repository when it is there (``IMAGENET_ML_SHARED``, default ``../shared/data``), else from
the 100 demo photos the package ships; label files from what the package and timm ship
(vendored Multilabelfy, timm's ReaL copy) or from files the tests write. The few tests that
really need ``../shared/data`` are marked :data:`requires_sample` / :data:`requires_shared_labels`
and skip, with a reason, when it is absent.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

import itertools
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import pytest
import timm
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

import imagenet_multilabel
from imagenet_multilabel.core.classes import wnid_to_index, wnids
from imagenet_multilabel.core.config import CONFIG_DIR
from imagenet_multilabel.runs.rundir import RunDir
from imagenet_multilabel.scoring.metrics.names import unflatten_metrics

REPO = Path(__file__).resolve().parents[1]


def entry_point(
    script: str, *args: str, env: Mapping[str, str] | None = None
) -> tuple[list[str], dict[str, str]]:
    """The command ``python <script> args...`` (evaluate.py, train.py) and its environment:
    this checkout's package also in the DDP ranks it starts, offline, one torch thread per
    process (oneDNN's float results depend on a process's thread count). ``env``: the
    environment to start from (default: this process's)."""
    path = [str(REPO / "src"), os.environ.get("PYTHONPATH")]
    env = {
        **(os.environ if env is None else env),
        "PYTHONPATH": os.pathsep.join(p for p in path if p),
        "HF_HUB_OFFLINE": "1",
        "PYTHONWARNINGS": "ignore",
        "OMP_NUM_THREADS": "1",
    }
    return [sys.executable, str(REPO / script), *args], env


def run_entry_point(
    script: str, *args: str, timeout: int, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Runs :func:`entry_point`'s command in the repository."""
    command, env = entry_point(script, *args, env=env)
    return subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, env=env, timeout=timeout
    )


def _shared_data() -> Path:
    """``$IMAGENET_ML_SHARED`` if set, else ``../shared/data`` beside this checkout."""
    env = os.environ.get("IMAGENET_ML_SHARED")
    return Path(env).expanduser() if env else REPO.parent / "shared" / "data"


SHARED = _shared_data()
SAMPLE = SHARED / "imagenet-sample"
SHARED_LABELS = SHARED / "labels"
HAVE_SAMPLE = len(list(SAMPLE.glob("n*.JPEG"))) == 1000
HAVE_SHARED_LABELS = all(
    (SHARED_LABELS / p).is_file()
    for p in ("reassessed-imagenet/real.json", "multilabelfy/imagenetv2_refined_labels.json")
)

requires_sample = pytest.mark.skipif(
    not HAVE_SAMPLE,
    reason=f"needs the 1000-photo ImageNet sample ({SAMPLE} not found; set IMAGENET_ML_SHARED)",
)
requires_shared_labels = pytest.mark.skipif(
    not HAVE_SHARED_LABELS,
    reason=f"needs the original label files of {SHARED_LABELS} (not found; set IMAGENET_ML_SHARED)",
)

# Label files that ship with the package and with timm, read by the tests independently
# of the package's loaders.
PACKAGE = Path(imagenet_multilabel.__file__).resolve().parent
MULTILABELFY_JSON = PACKAGE / "assets/labels/multilabelfy/imagenetv2_refined_labels.json"
REAL_JSON = Path(timm.__file__).resolve().parent / "data" / "_info" / "imagenet_real_labels.json"

# The demo photos: one per 10th class, named <wnid>_<name>.JPEG.
DEMO_PHOTOS = sorted((PACKAGE / "assets" / "demo").glob("n*.JPEG"))
DEMO_CLASS = {wnid_to_index()[p.name.split("_", 1)[0]]: p for p in DEMO_PHOTOS}
DEMO_CLASSES = sorted(DEMO_CLASS)


def photo(index: int) -> Path:
    """A real JPEG for class ``index``: the sample's photo of that class when the sample is
    present, else the demo photo of that class, else (no demo photo of it) a demo photo of
    another class: the test then gives the class by where it puts the photo. Tests that
    need the picture to show the class use classes of :data:`DEMO_CLASSES`."""
    if HAVE_SAMPLE:
        (path,) = SAMPLE.glob(f"{wnids()[index]}_*.JPEG")
        return path
    return DEMO_CLASS.get(index, DEMO_PHOTOS[index % len(DEMO_PHOTOS)])


def photo_name(index: int) -> str:
    """``<wnid>_<index>.JPEG``: a file name that carries the class (flat demo layout)."""
    return f"{wnids()[index]}_{index}.JPEG"


def make_wnid_folders(root: Path, classes: Iterable[int]) -> Path:
    """ImageNet val layout: ``root/<wnid>/<wnid>_<index>.JPEG``, a real photo per class."""
    for index in classes:
        folder = root / wnids()[index]
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(photo(index), folder / photo_name(index))
    return root


@pytest.fixture
def compose_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose a config of conf/ with overrides. Each call gets its own output folder that
    does not exist yet (``tmp_path/run``, then ``run-2``, ...), so that two runs of a test
    never share files. Callbacks (progress bars) are left out unless ``keep_callbacks``."""
    numbers = itertools.count(1)

    def _compose(
        *overrides: str, config_name: str = "evaluate", keep_callbacks: bool = False
    ) -> DictConfig:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose(config_name, overrides=list(overrides), return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        out = next(
            o for n in numbers if not (o := tmp_path / ("run" if n == 1 else f"run-{n}")).exists()
        )
        with open_dict(cfg):
            cfg.paths.output_dir = str(out)
            cfg.paths.shared_data = str(SHARED)
            if "trainer" in cfg:
                cfg.num_workers = 0
                if not keep_callbacks:
                    cfg.callbacks = {}
                    cfg.trainer.enable_progress_bar = False
        return cfg

    yield _compose
    GlobalHydra.instance().clear()


@pytest.fixture
def wnid_folder(tmp_path: Path) -> Path:
    """13 real photos (every 83rd class) in wnid folders."""
    return make_wnid_folders(tmp_path / "val", range(0, 1000, 83))


# ----------------------------------------------------------------- reading metrics back


def dataset_metrics(flat: Mapping[str, float], dataset: str) -> dict[str, float]:
    """The metrics of ``dataset`` in the flat dict that ``evaluate``/``score`` return
    (``<dataset>/<metric>`` keys)."""
    return unflatten_metrics(flat)[dataset]


def run_metrics(run_dir: str | Path, dataset: str) -> dict[str, float]:
    """The metrics of ``dataset`` in a finished run, read through ``RunDir`` as every
    reader of runs does."""
    return RunDir(run_dir).metrics[dataset]


def read_label_json(path: Path) -> dict[str, list[int]]:
    """A JSON object ``file -> [class indices]`` (Multilabelfy's format), read with json."""
    return {k: sorted({int(c) for c in v}) for k, v in json.loads(path.read_text()).items()}


@pytest.fixture(scope="session")
def slurm_cluster():
    """A real Slurm on this machine, with accounting (tests/slurm_cluster.py): two nodes,
    each a slurmd of this machine (partition ``cpu``, the default, has the first alone;
    ``all`` both); installed where missing (root, apt), started for the session, stopped
    at its end. Skips with the reason where Slurm can neither be found nor installed."""
    from .slurm_cluster import Unavailable, start_cluster

    try:
        cluster = start_cluster(nodes=2)
    except Unavailable as e:
        pytest.skip(str(e))
    print(f"slurm cluster up in {cluster.startup_s:.1f} s ({cluster.root})")
    yield cluster
    cluster.stop()
