"""Run results on disk: written atomically (temp file + rename), read back with checks.

A run directory holds ``metrics.json`` (flat: name -> number), ``run.json`` (what is needed
to compare and reproduce the run), ``predictions.npz`` or ``predictions/<dataset>.npz``
(per-image logits in dataset order), the resolved ``.hydra/config.yaml`` and the log.
"""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from imagenet_multilabel.core.errors import DataError, UserError
from imagenet_multilabel.core.files import new_file_mode, read_json
from imagenet_multilabel.runs.image_sets import split_image_sets
from imagenet_multilabel.scoring.metrics.names import (
    unflatten_metrics,
)

PREDICTION_KEYS = ("index", "path", "target", "logits")
# the files of a run folder that mark its state
METRICS_FILE = "metrics.json"  # written last: its presence marks a complete run
JOB_FILE = "job.json"  # a sweep job's configuration and data, written when it starts
FAILED_FILE = "failed.json"  # a sweep job's one-line reason for failing


def check_output_dir(path: str | Path) -> Path:
    """The run folder exists and can be written (before any work is done)."""

    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UserError(
            f"cannot write the run folder {path} ({e.strerror}): choose another with "
            "hydra.run.dir=..."
        ) from None
    return path


def write_predictions(
    path: str | Path,
    *,
    index: np.ndarray,
    files: list[str],
    target: np.ndarray,
    logits: np.ndarray,
    valid: np.ndarray | None = None,
    main: np.ndarray | None = None,
    logits_dtype: str = "float32",
) -> None:
    """Per-image predictions in dataset order. ``valid`` (bool N x C) is stored packed;
    ``main`` (N, the main object of each image, -1 for none) where the label set names one."""
    arrays: dict[str, np.ndarray] = {
        "index": np.asarray(index, dtype=np.int64),
        "path": np.asarray(files, dtype=np.str_),
        "target": np.asarray(target, dtype=np.int64),
        "logits": np.asarray(logits, dtype=np.dtype(logits_dtype)),
    }
    if valid is not None:
        arrays["valid_packed"] = np.packbits(np.asarray(valid, dtype=bool), axis=1)
    if main is not None:
        arrays["main"] = np.asarray(main, dtype=np.int16)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".npz")
    os.fchmod(fd, new_file_mode())
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_predictions(path: str | Path) -> dict[str, np.ndarray]:
    """Read a predictions file and check that it is complete and consistent."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise DataError(f"predictions file {path} does not exist") from None
    except Exception as e:
        raise DataError(f"predictions file {path} is corrupt ({type(e).__name__})") from None
    missing = [k for k in PREDICTION_KEYS if k not in data]
    if missing:
        raise DataError(f"predictions file {path} lacks {', '.join(missing)}: rerun evaluation")
    n = len(data["index"])
    if data["logits"].ndim != 2 or any(len(data[k]) != n for k in PREDICTION_KEYS):
        raise DataError(f"predictions file {path} is incomplete: arrays differ in length")
    if not np.array_equal(data["index"], np.arange(n)):
        raise DataError(f"predictions file {path} is not a complete run in dataset order")
    if "valid_packed" in data:
        c = data["logits"].shape[1]
        data["valid"] = np.unpackbits(data.pop("valid_packed"), axis=1, count=c).astype(bool)
    return data


def start_run_dir(path: str | Path) -> Path:
    """Before a run works: its folder exists and can be written, and holds no metrics.json
    of an earlier run (a reused folder), so that "metrics.json means finished" holds."""
    path = check_output_dir(path)
    forget_result(path)
    return path


def forget_result(path: str | Path) -> None:
    """Remove the metrics.json of a run folder (one an earlier run left, or one of a run
    that failed after writing it), so that "metrics.json means finished" holds."""
    (Path(path) / METRICS_FILE).unlink(missing_ok=True)


# ------------------------------------------------------------------- metric keys and runs


def _job_folders(path: Path) -> list[Path]:
    """The finished job folders of a sweep folder (``multirun.yaml`` of Hydra, or folders
    holding metrics.json), first the finished ones."""
    try:
        children = sorted(p for p in path.iterdir() if p.is_dir())
    except OSError:
        return []
    finished = [p for p in children if (p / "metrics.json").is_file()]
    started = [p for p in children if (p / "job.json").is_file() or (p / ".hydra").is_dir()]
    if finished or (path / "multirun.yaml").is_file():
        return finished or started
    return []


class RunDir:
    """A finished run directory, read back: the one reader that ``score``, ``gap``, the
    leaderboard and the gallery use.

    ``metrics``: ``{dataset: {metric: value}}`` (null in the file -> NaN); ``image_sets``:
    ``{dataset: {num_distinct_images, images_sha256}}`` (runs/image_sets.py), for the
    datasets whose metrics.json records them; ``info``: run.json;
    ``prediction_files``: ``{dataset: path}`` of ``predictions/<dataset>.npz``. A folder
    without metrics.json did not finish and is an error (metrics.json is written last).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        if not self.path.is_dir():
            what = "is not a folder" if self.path.exists() else "does not exist"
            raise DataError(f"run folder {self.path} {what}: pass the folder of a finished run")
        if not (self.path / "metrics.json").is_file():
            jobs = _job_folders(self.path)
            if jobs:
                raise DataError(
                    f"{self.path} is a sweep folder: pass one of its job folders, e.g. {jobs[0]}"
                )
            raise DataError(f"{self.path} has no metrics.json: that run did not finish")
        # which images each dataset's result counted is no metric (runs/image_sets.py)
        self.metrics, self.image_sets = split_image_sets(
            unflatten_metrics(read_json(self.path / "metrics.json"), self.path / "metrics.json")
        )
        info = self.path / "run.json"
        self.info: dict[str, Any] = read_json(info) if info.is_file() else {}
        self.prediction_files = {
            p.stem: p for p in sorted((self.path / "predictions").glob("*.npz"))
        }

    @property
    def datasets(self) -> list[str]:
        return list(self.metrics)

    @property
    def task(self) -> str:
        return str(self.info.get("task") or "evaluate")

    def view(self, which: str = "finetuned") -> RunDir:
        """The run as an evaluation of one model. A train.py run holds two, under
        ``<set>/finetuned.<metric>`` and ``<set>/pretrained.<metric>`` (and their
        ``delta.``), with predictions ``<set>.npz`` and ``<set>@pretrained.npz``: its view
        has ``which`` model's metrics under the evaluation's names (``<set>/top1``) and its
        predictions, and run.json's model records the weights (``fine-tuned:<run>``).
        Any other run is its own view."""
        if self.task != "train":
            return self
        if which not in ("finetuned", "pretrained"):
            raise ValueError(f"which={which!r}: finetuned or pretrained")
        prefix = f"{which}."
        out = copy.copy(self)
        out.metrics = {
            name: {k[len(prefix) :]: v for k, v in metrics.items() if k.startswith(prefix)}
            for name, metrics in self.metrics.items()
        }
        suffix = "@pretrained" if which == "pretrained" else ""
        out.prediction_files = {
            name: self.prediction_files[name + suffix]
            for name in out.metrics
            if name + suffix in self.prediction_files
        }
        model = dict(self.info.get("model") or {})
        if which == "finetuned":
            model["weights"] = f"fine-tuned:{self.path.resolve()}"
        out.info = {**self.info, "model": model, "task": "evaluate"}
        return out

    def dataset_metrics(self, dataset: str | None = None) -> tuple[str, dict[str, Any]]:
        """``(name, metrics)`` of one dataset; ``dataset=None`` is allowed when the run has
        exactly one."""
        if dataset is None:
            if len(self.metrics) != 1:
                raise DataError(f"{self.path} holds datasets {', '.join(self.metrics)}: choose one")
            dataset = next(iter(self.metrics))
        if dataset not in self.metrics:
            raise DataError(
                f"{self.path} has no dataset '{dataset}' (it has {', '.join(self.metrics)})"
            )
        return dataset, self.metrics[dataset]

    def predictions(self, dataset: str) -> dict[str, np.ndarray]:
        if dataset not in self.prediction_files:
            have = ", ".join(self.prediction_files) or "none"
            raise DataError(f"{self.path} has no predictions of '{dataset}' (it has {have})")
        data = read_predictions(self.prediction_files[dataset])
        counted = self.metrics.get(dataset, {}).get("num_images")
        if counted is not None and counted == counted and int(counted) != len(data["index"]):
            raise DataError(
                f"{self.prediction_files[dataset]} holds {len(data['index'])} images but "
                f"metrics.json counts {int(counted)}: the folder mixes two runs; run it again"
            )
        return data
