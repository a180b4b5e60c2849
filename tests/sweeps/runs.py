"""Run folders written the way evaluate.py writes them (run.json, metrics.json last, job.json
of a sweep job), without running a model: for leaderboard and resume tests."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from imagenet_multilabel.core.files import write_json
from imagenet_multilabel.scoring.metrics.names import flatten_metrics

PP_LITE0 = {
    "input_size": [3, 224, 224],
    "interpolation": "bicubic",
    "crop_pct": 0.875,
    "crop_mode": "center",
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
}


def write_run(
    path: Path,
    model: str,
    datasets: Mapping[str, Mapping[str, float]],
    *,
    weights: str = "none",
    preprocessing: Mapping[str, Any] | None = None,
    records: Mapping[str, Mapping[str, Any]] | None = None,
    images_per_second: float = 50.0,
    **settings: Any,
) -> Path:
    """A finished evaluation of ``model`` with ``{dataset: metrics}``."""
    num_images = sum(int(m.get("num_images", 100)) for m in datasets.values())
    info = {
        "task": "evaluate",
        "model": {"name": model, "weights": weights, "num_params": 4_650_000},
        "preprocessing": dict(preprocessing or PP_LITE0),
        "datasets": {
            name: {
                "class": "WnidFilesDataset",
                "root": "/photos",
                "num_images": int(m.get("num_images", 100)),
                "labels": "none",
                **dict((records or {}).get(name, {})),
            }
            for name, m in datasets.items()
        },
        "heads": ["single", "multilabel"],
        "seed": 0,
        "batch_size": 16,
        "num_workers": 1,
        "trainer": {"accelerator": "cpu", "devices": 1, "precision": "32-true"},
        "num_images": num_images,
        "images_per_second": images_per_second,
        **settings,
    }
    write_json(path / "run.json", info)
    write_json(path / "metrics.json", flatten_metrics(datasets))
    return path


def write_failed(path: Path, model: str, datasets: list[str], error: str) -> Path:
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
