"""What the tests share besides fixtures (those are in conftest.py): where the checkout and
the data are, real photos for any class, the one way to start the project's commands, and
run folders written the way ``evaluate.py`` writes them.

The suite runs on a plain clone. Photos come from the 1000-photo ImageNet sample beside the
repository when it is there (``IMAGENET_ML_SHARED``, default ``../shared/data``), else from
the 100 demo photos the package ships; label files from what the package and timm ship
(vendored Multilabelfy, timm's ReaL copy) or from files the tests write. The few tests that
really need ``../shared/data`` are marked :data:`requires_sample` / :data:`requires_shared_labels`
and skip, with a reason, when it is absent.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import timm
import torch

import imagenet_multilabel
from imagenet_multilabel.core.classes import wnid_to_index, wnids
from imagenet_multilabel.core.files import write_json
from imagenet_multilabel.data.datasets.folders import DEMO_ROOT
from imagenet_multilabel.runs.image_sets import split_image_sets
from imagenet_multilabel.runs.rundir import RunDir, write_predictions
from imagenet_multilabel.scoring.metrics.multilabel import multilabel_metrics
from imagenet_multilabel.scoring.metrics.names import flatten_metrics, unflatten_metrics
from imagenet_multilabel.scoring.metrics.single import single_label_metrics
from tests.paths import REPO, SHARED

# ------------------------------------------------------------ the project's commands

# oneDNN's float results depend on a process's thread count (docs/distributed.md): runs
# whose numbers are compared across process counts give every process one thread.
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def project_env(
    base: Mapping[str, str] | None = None, extra: Mapping[str, str | None] | None = None
) -> dict[str, str]:
    """The environment of a command of this checkout: ``base`` (default: this process's),
    this checkout's src/ first on ``PYTHONPATH`` (so that the DDP ranks and sweep jobs it
    starts import it too), offline (``HF_HUB_OFFLINE=1``), Python's warnings off; then
    ``extra`` (a ``None`` value removes the variable)."""
    base = os.environ if base is None else base
    path = [str(REPO / "src"), base.get("PYTHONPATH")]
    env = {
        **base,
        "PYTHONPATH": os.pathsep.join(p for p in path if p),
        "HF_HUB_OFFLINE": "1",
        "PYTHONWARNINGS": "ignore",
    }
    for key, value in (extra or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def python_command(args: Sequence[str]) -> list[str]:
    """``python args...`` with this interpreter; a script of the repository named by its
    file name (``evaluate.py``, ``train.py``) is given by its path."""
    args = [str(a) for a in args]
    if args and args[0].endswith(".py") and not os.path.isabs(args[0]):
        args[0] = str(REPO / args[0])
    return [sys.executable, *args]


def run(
    args: Sequence[str],
    *,
    env: Mapping[str, str | None] | None = None,
    base: Mapping[str, str] | None = None,
    cwd: Path | str = REPO,
    timeout: float = 600,
    check: bool = False,
) -> subprocess.CompletedProcess:
    """Runs ``python args...`` as a user does (from the repository unless ``cwd``), output
    captured as text. The environment is :func:`project_env` of ``base`` with ``env`` on
    top. Examples: ``run(["evaluate.py", "model=test_tiny"])``,
    ``run(["-m", "imagenet_multilabel", "score", ...])``."""
    return subprocess.run(
        python_command(args),
        cwd=cwd,
        env=project_env(base, env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
    )


def start(
    args: Sequence[str],
    *,
    env: Mapping[str, str | None] | None = None,
    base: Mapping[str, str] | None = None,
    cwd: Path | str = REPO,
    **popen: Any,
) -> subprocess.Popen:
    """:func:`run`'s command started in the background (``popen``: Popen's other
    arguments, e.g. where its output goes)."""
    return subprocess.Popen(python_command(args), cwd=cwd, env=project_env(base, env), **popen)


def evaluate_py(*args: str, **kwargs: Any) -> subprocess.CompletedProcess:
    """``python evaluate.py args...`` (:func:`run`'s keywords)."""
    return run(["evaluate.py", *args], **kwargs)


def train_py(*args: str, **kwargs: Any) -> subprocess.CompletedProcess:
    """``python train.py args...`` (:func:`run`'s keywords)."""
    return run(["train.py", *args], **kwargs)


# the smallest fine-tuning ``train.py`` runs: the tiny model, one epoch of 2 steps on the
# demo photos (16 training composites, 8 of each held-out set), no logger
TINY_TRAIN = (
    "model=test_tiny",
    "logger=none",
    "trainer.max_epochs=1",
    "composites.train_images=16",
    "composites.eval_images=8",
    "train_batch_size=8",
)


def command(name: str, *args: str, **kwargs: Any) -> subprocess.CompletedProcess:
    """``python -m imagenet_multilabel <name> args...`` (:func:`run`'s keywords)."""
    return run(["-m", "imagenet_multilabel", name, *args], **kwargs)


def error_line(proc: subprocess.CompletedProcess) -> str:
    """The one ``error: ...`` line of a command that failed on bad input (no traceback)."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    return lines[0]


# ------------------------------------------------------------------- data and photos


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


def demo_folder(root: Path, names: Iterable[str]) -> Path:
    """A flat folder ``root`` of links to the named demo photos, made where missing (several
    processes may make the same folder at once)."""
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        with contextlib.suppress(FileExistsError):
            (root / name).symlink_to(DEMO_ROOT / name)
    return root


def demo_photos() -> list[str]:
    """The file names of the package's demo photos, sorted."""
    return sorted(p.name for p in DEMO_ROOT.glob("*.JPEG"))


def class_of(name: str) -> int:
    """The class of a photo named ``<wnid>_...``."""
    return wnid_to_index()[name.split("_", 1)[0]]


def read_label_json(path: Path) -> dict[str, list[int]]:
    """A JSON object ``file -> [class indices]`` (Multilabelfy's format), read with json."""
    return {k: sorted({int(c) for c in v}) for k, v in json.loads(path.read_text()).items()}


# ----------------------------------------------------------------- reading metrics back


def dataset_metrics(flat: Mapping[str, float], dataset: str) -> dict[str, float]:
    """The metrics of ``dataset`` in the flat dict that ``evaluate``/``score`` return
    (``<dataset>/<metric>`` keys), less the images it counted (as ``RunDir`` reads them)."""
    return split_image_sets(unflatten_metrics(flat))[0][dataset]


def run_metrics(run_dir: str | Path, dataset: str) -> dict[str, float]:
    """The metrics of ``dataset`` in a finished run, read through ``RunDir`` as every
    reader of runs does."""
    return RunDir(run_dir).metrics[dataset]


def folder_image_ids(root: Path) -> list[str]:
    """The ids an image folder's run scores: the relative paths of its images, found by
    walking the folder (independently of the package's dataset classes)."""
    suffixes = {".jpeg", ".jpg", ".png"}
    return [p.relative_to(root).as_posix() for p in root.rglob("*") if p.suffix.lower() in suffixes]


def assert_counted_images(run_dir: Path, dataset: str, ids: Iterable[str]) -> str:
    """metrics.json of ``run_dir`` says that ``dataset``'s result counted exactly ``ids``
    (their number and the sha256 of their sorted ids, one per line, computed here), and
    the run's data fingerprint (what the job identity reads) has the same hash. Returns
    the hash."""
    import hashlib

    distinct = sorted(set(ids))
    expected = hashlib.sha256("".join(f"{i}\n" for i in distinct).encode()).hexdigest()
    flat = json.loads((Path(run_dir) / "metrics.json").read_text())
    assert flat[f"{dataset}/num_distinct_images"] == len(distinct)
    assert flat[f"{dataset}/images_sha256"] == expected
    record = json.loads((Path(run_dir) / "run.json").read_text())
    assert record["datasets"][dataset]["fingerprint"]["ids_sha256"] == expected
    return expected


# --------------------------------------------------- run folders written without a model

# timm's preprocessing of efficientnet_lite0 (a run.json's "preprocessing")
PP_LITE0 = {
    "input_size": [3, 224, 224],
    "interpolation": "bicubic",
    "crop_pct": 0.875,
    "crop_mode": "center",
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
}


@dataclass
class Predictions:
    """A dataset's predictions as a run stores them (``predictions/<dataset>.npz``), with
    what each row was made to be (``kinds``) where a test built them to a plan."""

    files: list[str]
    target: np.ndarray
    logits: np.ndarray
    valid: np.ndarray | None
    kinds: list[str] = field(default_factory=list)

    def rows(self, kind: str) -> set[int]:
        return {i for i, k in enumerate(self.kinds) if k == kind}

    def metrics(self) -> dict[str, float]:
        """Its metrics, computed by the package's metric functions as evaluate does."""
        logits, target = torch.from_numpy(self.logits), torch.from_numpy(self.target)
        metrics = single_label_metrics(logits, target)
        if self.valid is not None:
            metrics.update(multilabel_metrics(logits, target, torch.from_numpy(self.valid)))
        return metrics

    def record(self, root: Path | str) -> dict[str, Any]:
        """Its entry in run.json's ``datasets``."""
        composite = "+" in self.files[0]
        return {
            "class": "CompositeDataset" if composite else "WnidFilesDataset",
            "root": str(root),
            "num_images": len(self.files),
            "labels": "none" if self.valid is None else ("intrinsic" if composite else "file"),
        }


def write_run(
    path: Path,
    model: str,
    datasets: Mapping[str, Mapping[str, float] | Predictions],
    *,
    weights: str = "none",
    root: Path | str = DEMO_ROOT,
    preprocessing: Mapping[str, Any] | None = None,
    records: Mapping[str, Mapping[str, Any]] | None = None,
    images_per_second: float = 50.0,
    **settings: Any,
) -> Path:
    """A finished evaluation of ``model`` written as evaluate.py writes it (run.json,
    predictions, metrics.json last), without running a model. Each dataset is given by its
    metrics, or by its :class:`Predictions` (stored, and scored by the package's metric
    code); ``records``: what to add to a dataset's run.json entry; ``settings``: to run.json."""
    metrics: dict[str, Mapping[str, float]] = {}
    info: dict[str, dict[str, Any]] = {}
    for name, d in datasets.items():
        if isinstance(d, Predictions):
            write_predictions(
                path / "predictions" / f"{name}.npz",
                index=np.arange(len(d.files)),
                files=d.files,
                target=d.target,
                logits=d.logits,
                valid=d.valid,
            )
            metrics[name], info[name] = d.metrics(), d.record(root)
        else:
            metrics[name] = d
            num_images = int(d.get("num_images", 100))
            info[name] = {
                "class": "WnidFilesDataset",
                "root": str(root),
                "num_images": num_images,
                "labels": "none",
            }
        info[name].update((records or {}).get(name, {}))
    run_info = {
        "task": "evaluate",
        "model": {"name": model, "weights": weights, "num_params": 4_650_000},
        "preprocessing": dict(preprocessing or PP_LITE0),
        "datasets": info,
        "heads": ["single", "multilabel"],
        "seed": 0,
        "batch_size": 16,
        "num_workers": 1,
        "trainer": {"accelerator": "cpu", "devices": 1, "precision": "32-true"},
        "num_images": sum(d["num_images"] for d in info.values()),
        "images_per_second": images_per_second,
        **settings,
    }
    write_json(path / "run.json", run_info)
    write_json(path / "metrics.json", flatten_metrics(metrics))
    return path


def write_failed(path: Path, model: str, datasets: list[str], error: str) -> Path:
    """A sweep job that failed: failed.json, no metrics."""
    write_json(
        path / "failed.json",
        {"error": error, "model": {"name": model, "weights": "hub"}, "datasets": datasets},
    )
    return path


def subgroup_metrics(
    counts: Mapping[str, int], accuracy: Mapping[str, float], **extra: float
) -> dict[str, float]:
    """Metrics of a labelled dataset with label-count subgroups (as the multi-label head
    writes them): the same accuracy per group under top1, real_top1 and vartopk_strict."""
    out: dict[str, float] = {"num_images": sum(counts.values())}
    for group, n in counts.items():
        out[f"num_images@labels={group}"] = n
        for metric in ("top1", "real_top1", "vartopk_strict"):
            out[f"{metric}@labels={group}"] = accuracy[group] if n else float("nan")
    total = sum(counts.values())
    for metric in ("top1", "real_top1", "vartopk_strict"):
        out[metric] = sum(accuracy[g] * n for g, n in counts.items() if n) / total
    out.update(extra)
    return out


def tau_reference(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-b from its definition over all pairs."""
    pairs = list(combinations(range(len(a)), 2))
    s = sum(np.sign(a[i] - a[j]) * np.sign(b[i] - b[j]) for i, j in pairs)
    n1 = sum(a[i] != a[j] for i, j in pairs)
    n2 = sum(b[i] != b[j] for i, j in pairs)
    return s / np.sqrt(n1 * n2)
