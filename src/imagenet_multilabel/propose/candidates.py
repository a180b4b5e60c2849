"""Candidate labels from several runs on the same images: each model proposes the classes
it ranks within its top-k or gives at least probability p; a candidate's support is the
number of models that propose it.

The runs are read through :class:`~imagenet_multilabel.runs.rundir.RunDir` (a sweep folder
stands for its finished jobs); they must hold predictions of the same images in the same
order, with the same original labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from imagenet_multilabel.core.errors import DataError, UserError
from imagenet_multilabel.runs.rundir import RunDir

# The defaults, chosen from benchmarks/propose_recall.py (docs/propose.md): on 200 two-photo
# composites of the 1000-photo ImageNet sample, tf_efficientnet_lite0 at 4 sizes x hflip.
# The ensemble's top-6 per model, at most 8 by support: 98.8% of the true labels at 7.9
# candidates per image (97.5% of the labels the original does not give).
DEFAULT_TOP_K = 6
DEFAULT_MIN_PROB: float | None = None
DEFAULT_MAX_CANDIDATES = 8


@dataclass(frozen=True)
class Rule:
    """Which classes a model proposes and how many candidates an image keeps.

    ``top_k``: the model's k highest classes (0: none by rank); ``min_prob``: every class
    with at least this softmax probability (None: none by probability); a class either
    selects is proposed. ``min_support``: models that must propose a class. At most
    ``max_candidates`` per image, the original label included, by support then mean
    probability.
    """

    top_k: int = DEFAULT_TOP_K
    min_prob: float | None = DEFAULT_MIN_PROB
    max_candidates: int = DEFAULT_MAX_CANDIDATES
    min_support: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise UserError(f"top_k={self.top_k!r} must be a whole number >= 0 (0: no top-k)")
        if self.min_prob is not None and not (
            isinstance(self.min_prob, (int, float)) and 0 < self.min_prob <= 1
        ):
            raise UserError(f"min_prob={self.min_prob!r} must be in (0, 1], or null for none")
        if self.top_k == 0 and self.min_prob is None:
            raise UserError("top_k=0 and min_prob=null propose nothing: set one of them")
        if (
            isinstance(self.max_candidates, bool)
            or not isinstance(self.max_candidates, int)
            or self.max_candidates < 1
        ):
            raise UserError(f"max_candidates={self.max_candidates!r} must be a whole number >= 1")
        if (
            isinstance(self.min_support, bool)
            or not isinstance(self.min_support, int)
            or self.min_support < 1
        ):
            raise UserError(f"min_support={self.min_support!r} must be a whole number >= 1")

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Ensemble:
    """The softmax probabilities of several runs on one dataset's images."""

    dataset: str
    runs: tuple[Path, ...]
    models: tuple[str, ...]  # one description per run (model, input size, flip)
    paths: np.ndarray  # [N] image paths as stored in the runs
    target: np.ndarray  # [N] original labels
    probs: np.ndarray  # [M, N, C] float32
    root: str | None  # the dataset root recorded by the first run
    info: dict  # run.json's entry of the dataset (first run)
    valid: np.ndarray | None = None  # [N, C] the label set stored with the first run


def softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    x = x - np.max(x, axis=-1, keepdims=True)
    np.exp(x, out=x)
    x /= x.sum(axis=-1, keepdims=True)
    return x.astype(np.float32)


def expand_runs(paths: Sequence[str | Path]) -> list[Path]:
    """Run folders; a sweep folder (no metrics.json, jobs below it) stands for its finished
    jobs, in name order."""
    out: list[Path] = []
    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir() and not (path / "metrics.json").is_file():
            jobs = sorted(p.parent for p in path.glob("*/metrics.json"))
            if not jobs:
                raise DataError(
                    f"{path} is neither a finished run nor a sweep folder with finished jobs: "
                    "pass runs=<run dir>,<run dir> or runs=<sweep dir>"
                )
            out.extend(jobs)
        else:
            out.append(path)
    if not out:
        raise UserError("no runs given: pass runs=<sweep dir> or runs=<run dir>,<run dir>")
    if len(set(p.resolve() for p in out)) != len(out):
        raise UserError("a run is given twice: pass each run folder once")
    return out


def describe_run(run: RunDir) -> str:
    """``model@size[+hflip]`` from run.json (the folder name where it records none)."""
    info = run.info
    model = (info.get("model") or {}).get("name") if isinstance(info.get("model"), dict) else None
    model = model or info.get("model_name") or run.path.name
    pre = info.get("preprocessing") or {}
    size = pre.get("input_size")
    text = str(model)
    if size:
        text += f"@{size[-1]}"
    if pre.get("hflip"):
        text += "+hflip"
    return text


def _choose_dataset(runs: list[RunDir], dataset: str | None) -> str:
    shared = set(runs[0].prediction_files)
    for run in runs[1:]:
        shared &= set(run.prediction_files)
    if dataset is not None:
        for run in runs:
            if dataset not in run.prediction_files:
                have = ", ".join(run.prediction_files) or "none"
                raise DataError(f"{run.path} has no predictions of '{dataset}' (it has {have})")
        return dataset
    if not shared:
        raise DataError(
            "the runs share no dataset: "
            + "; ".join(f"{r.path.name}: {', '.join(r.prediction_files) or 'none'}" for r in runs)
            + " (runs of different datasets): pass runs of one dataset"
        )
    if len(shared) > 1:
        raise DataError(f"the runs share datasets {', '.join(sorted(shared))}: choose dataset=")
    return next(iter(shared))


def load_ensemble(paths: Sequence[str | Path], dataset: str | None = None) -> Ensemble:
    """Read the runs' predictions of one dataset; every run must list the same images in
    the same order with the same original labels."""
    runs = [RunDir(p) for p in expand_runs(paths)]
    name = _choose_dataset(runs, dataset)
    first = runs[0].predictions(name)
    probs = [softmax(first["logits"])]
    for run in runs[1:]:
        data = run.predictions(name)
        if len(data["path"]) != len(first["path"]) or not np.array_equal(
            data["path"], first["path"]
        ):
            raise DataError(
                f"{run.path} and {runs[0].path} hold different image lists of '{name}' "
                f"({len(data['path'])} vs {len(first['path'])} images): pass runs of the same "
                "images"
            )
        if not np.array_equal(data["target"], first["target"]):
            raise DataError(
                f"{run.path} and {runs[0].path} give the images of '{name}' different original "
                "labels: pass runs of the same dataset"
            )
        if data["logits"].shape != first["logits"].shape:
            raise DataError(f"{run.path} has logits over another number of classes")
        probs.append(softmax(data["logits"]))
    info = (runs[0].info.get("datasets") or {}).get(name) or {}
    return Ensemble(
        dataset=name,
        runs=tuple(r.path.resolve() for r in runs),
        models=tuple(describe_run(r) for r in runs),
        paths=np.asarray(first["path"]),
        target=np.asarray(first["target"], dtype=np.int64),
        probs=np.stack(probs),
        root=info.get("root"),
        info=dict(info),
        valid=first.get("valid"),
    )


@dataclass(frozen=True)
class Candidate:
    cls: int
    support: int  # models proposing it
    mean_prob: float  # mean over all models
    max_prob: float  # highest over all models
    original: bool  # the image's original label


def proposed_mask(probs: np.ndarray, rule: Rule) -> np.ndarray:
    """[M, N, C] probabilities -> [M, N, C] bool: what each model proposes."""
    mask = np.zeros(probs.shape, dtype=bool)
    if rule.top_k:
        k = min(rule.top_k, probs.shape[-1])
        top = np.argpartition(-probs, k - 1, axis=-1)[..., :k]
        np.put_along_axis(mask, top, True, axis=-1)
    if rule.min_prob is not None:
        mask |= probs >= rule.min_prob
    return mask


def candidate_matrix(
    probs: np.ndarray, target: np.ndarray | None, rule: Rule
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(chosen [N, C] bool, support [N, C] int, mean [N, C] float)``: the candidates of
    every image (``target`` None: the models' alone, the original label not added)."""
    support = proposed_mask(probs, rule).sum(axis=0)
    mean = probs.mean(axis=0)
    eligible = support >= rule.min_support
    score = np.where(eligible, support.astype(np.float64) * 2 + mean, -1.0)
    n = probs.shape[1]
    if target is not None:
        score[np.arange(n), target] = np.inf  # always kept
    k = min(rule.max_candidates, score.shape[1])
    order = np.argsort(-score, axis=1, kind="stable")[:, :k]
    chosen = np.zeros(score.shape, dtype=bool)
    np.put_along_axis(chosen, order, True, axis=1)
    chosen &= score > -1.0
    return chosen, support, mean


def image_candidates(ens: Ensemble, rule: Rule) -> list[list[Candidate]]:
    """Per image: the candidates, by support then mean probability (ties: class index)."""
    chosen, support, mean = candidate_matrix(ens.probs, ens.target, rule)
    highest = ens.probs.max(axis=0)
    out = []
    for i in range(len(ens.target)):
        classes = np.flatnonzero(chosen[i])
        ranked = sorted(classes.tolist(), key=lambda c: (-support[i, c], -mean[i, c], c))
        out.append(
            [
                Candidate(
                    int(c),
                    int(support[i, c]),
                    float(mean[i, c]),
                    float(highest[i, c]),
                    int(c) == int(ens.target[i]),
                )
                for c in ranked
            ]
        )
    return out


def recall(chosen: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """``(share of true labels among the candidates, mean candidates per image)``."""
    hits = (chosen & truth).sum()
    return float(hits / truth.sum()), float(chosen.sum(axis=1).mean())
