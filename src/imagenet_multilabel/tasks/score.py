"""score: recompute every metric of a finished run from its saved predictions, with any
label set, without the model; under several label sets and operating points at once, and
for several runs, how much each result and the models' order depend on the label set.

    python -m imagenet_multilabel score run_dir=outputs/evaluate/<run> labels=real
    python -m imagenet_multilabel score run_dir=[<run>,<run>] labels=[real,tsipras] \\
        labels.min_score=[0.5,0.8,0.95] labels.allow_missing=true

``report <sweep> --labels real tsipras ...`` runs the same over a sweep's finished runs
(:func:`sweep_sensitivity`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, ListConfig

from imagenet_multilabel.builders import build_scorer
from imagenet_multilabel.core.classes import NUM_CLASSES
from imagenet_multilabel.core.config import config_dir
from imagenet_multilabel.core.errors import DataError, UserError, one_line
from imagenet_multilabel.core.files import atomic_write_bytes, write_json
from imagenet_multilabel.data.labels.options import GROUP, command_overrides, label_options
from imagenet_multilabel.data.labels.sets import (
    AUTO,
    NONE,
    LabelSet,
    ResolvedLabels,
    load_label_set,
    resolve_labels,
)
from imagenet_multilabel.reports.sensitivity import (
    FIGURE_METRICS,
    plot_sensitivity,
    render_sensitivity,
    sensitivity,
)
from imagenet_multilabel.runs.image_sets import scored_image_set
from imagenet_multilabel.runs.rundir import RunDir
from imagenet_multilabel.runs.summary import print_summary
from imagenet_multilabel.scoring.metrics.names import flatten_metrics
from imagenet_multilabel.scoring.scorer import Scorer

log = logging.getLogger(__name__)


def score(cfg: DictConfig) -> dict[str, float]:
    if not cfg.get("run_dir"):
        raise UserError("no run given: pass run_dir=outputs/evaluate/<run>")
    many = isinstance(cfg.run_dir, (list, tuple, ListConfig))
    runs = [RunDir(str(r)) for r in (cfg.run_dir if many else [cfg.run_dir])]
    if not runs:
        raise UserError("run_dir=[] names no run: pass run_dir=outputs/evaluate/<run>")
    out = Path(cfg.paths.output_dir)
    for run in runs:
        if out.resolve() == run.path.resolve():
            raise UserError(
                f"the output folder is the scored run's own folder {run.path}: choose another "
                "with hydra.run.dir=..."
            )
    scorer = build_scorer(cfg.head, cfg.get("nonfinite_logits", "error"))
    options: list[dict[str, Any] | None] = [None]
    if cfg.get("labels"):
        options = list(label_options(cfg.labels, command_overrides())) or [None]
    if len(options) > 1 or len(runs) > 1:
        return score_sensitivity(runs, options, scorer, out, cfg.get("dataset"))
    run = runs[0]
    per_dataset, label_info = rescore_run(run, scorer, options[0], cfg.get("dataset"))

    metrics = flatten_metrics(per_dataset)
    write_json(
        out / "run.json",
        {
            "task": "score",
            "source_run": str(run.path.resolve()),
            "model": run.info.get("model"),
            "labels": label_info,
            "heads": scorer.names,
        },
    )
    write_json(out / "metrics.json", metrics)
    print_summary(per_dataset, title=f"re-scored {run.path.name}")
    log.info("wrote %s", out / "metrics.json")
    return metrics


def _run_names(runs: list[RunDir]) -> list[str]:
    """Each run's model name, or its folder's name where two runs share a model."""
    models = [r.info.get("model") for r in runs]
    names = [
        str((m.get("name") if isinstance(m, dict) else m) or r.path.name)
        for m, r in zip(models, runs, strict=True)
    ]
    if len(set(names)) < len(names):
        names = [f"{n} ({r.path.name})" for n, r in zip(names, runs, strict=True)]
    if len(set(names)) < len(names):
        names = [str(r.path) for r in runs]
    return names


def _option_name(option: Mapping[str, Any] | None) -> str:
    return str((option or {}).get("name") or "auto")


def score_sensitivity(
    runs: list[RunDir],
    options: list[dict[str, Any] | None],
    scorer: Scorer,
    out: Path,
    only: str | None = None,
) -> dict[str, float]:
    """:func:`write_sensitivity`, and ``metrics.json`` of the first run under the first
    set; returns those metrics."""
    metrics = write_sensitivity(runs, options, scorer, out, only)
    write_json(out / "metrics.json", metrics)
    return metrics


def sweep_sensitivity(runs: list[RunDir], words: Sequence[str], out: Path) -> list[Path]:
    """``report <sweep> --labels real tsipras labels.min_score=[0.5,0.8]``: the finished
    ``runs`` of a sweep under the label sets ``words`` name (names of conf/labels options
    and ``labels.<key>=<value>`` settings, composed as ``score`` composes
    ``labels=[...]``), with ``score``'s heads: :func:`write_sensitivity` into ``out``
    (beside the leaderboard; no metrics.json, which would make the folder a run)."""
    if not runs:
        raise UserError("no finished run with saved predictions to score under other label sets")
    names = [w for w in words if "=" not in w]
    settings = [w for w in words if "=" in w]
    wrong = [w for w in settings if not w.lstrip("+~").startswith(GROUP + ".")]
    if not names or wrong:
        raise UserError(
            f"--labels {' '.join(words)}: give names of conf/labels options and "
            "labels.<key>=<value> settings, e.g. --labels real tsipras labels.allow_missing=true"
        )
    overrides = [f"{GROUP}=[{','.join(names)}]", *settings]
    try:
        with initialize_config_dir(config_dir(), version_base="1.3"):
            cfg = compose("score", overrides=overrides)
    except HydraException as e:
        raise UserError(f"--labels {' '.join(words)}: {one_line(e)}") from None
    scorer = build_scorer(cfg.head, cfg.get("nonfinite_logits", "error"))
    write_sensitivity(runs, label_options(cfg.labels, overrides), scorer, out)
    return [p for ext in ("json", "md", "png") if (p := out / f"sensitivity.{ext}").is_file()]


def write_sensitivity(
    runs: list[RunDir],
    options: list[dict[str, Any] | None],
    scorer: Scorer,
    out: Path,
    only: str | None = None,
) -> dict[str, float]:
    """The same saved predictions of ``runs`` scored under every label set of ``options``:
    writes ``sensitivity.json`` / ``.md`` / ``.png`` (every multi-label metric under each
    set, its range, the figure against the operating point; with several runs the
    rankings, Kendall's tau and the swapped pairs on the images every set labels); returns
    the metrics of the first run under the first set."""
    names = _run_names(runs)
    option_names = [_option_name(o) for o in options]
    if len(set(option_names)) < len(option_names):
        raise UserError(f"the label sets {option_names} repeat a name: compare different ones")
    loaded = [
        load_label_set(o) if o is not None and o.get("name") not in (AUTO, NONE) else None
        for o in options
    ]
    scored, common, info, images = {}, {}, {}, {}
    for run, rname in zip(runs, names, strict=True):
        keep = labeled_everywhere(run, options, only, loaded)
        images[rname] = {d: int(k.sum()) for d, k in keep.items()}
        for option, oname, done in zip(options, option_names, loaded, strict=True):
            per_dataset, label_info = rescore_run(run, scorer, option, only, loaded=done)
            scored[(rname, oname)] = flatten_metrics(per_dataset)
            info[f"{rname} [{oname}]"] = label_info
            if len(runs) > 1:
                restricted, _ = rescore_run(run, scorer, option, only, keep=keep, loaded=done)
                common[(rname, oname)] = flatten_metrics(restricted)
    single = set(scorer.metric_names(False))
    result = sensitivity(names, option_names, scored, common or None, sorted(single))
    result["common_images"] = images
    result["labels"] = info
    result["source_runs"] = [str(r.path.resolve()) for r in runs]
    write_json(out / "sensitivity.json", result)
    shown = "; ".join(f"{r}: {d}" for r, d in images.items())
    atomic_write_bytes(out / "sensitivity.md", (render_sensitivity(result, shown) + "\n").encode())
    figure = plot_sensitivity(result, out / "sensitivity.png")
    for key, entry in result["metrics"].items():
        if key.split("/", 1)[1].split("@")[0] in FIGURE_METRICS:
            ranges = [v for v in entry["range"].values() if v is not None]
            if ranges:
                log.info("%s: range over label sets up to %.4f", key, max(ranges))
    log.info(
        "wrote %s (%d runs x %d label sets)%s",
        out / "sensitivity.md",
        len(runs),
        len(options),
        f" and {figure}" if figure else "",
    )
    print(render_sensitivity(result, shown))
    return scored[(names[0], option_names[0])]


def labeled_everywhere(
    run: RunDir,
    options: list[dict[str, Any] | None],
    only: str | None = None,
    loaded: list[tuple[LabelSet, bool] | None] | None = None,
) -> dict[str, torch.Tensor]:
    """Per dataset of ``run``: the images every label set of ``options`` labels (bool);
    ``loaded``: the options' label sets, loaded once."""
    keep: dict[str, torch.Tensor] = {}
    for name in _datasets(run, only):
        inputs = _label_inputs(_predictions(run, name))  # the labels only: no logits, no hash
        for option, done in zip(options, loaded or [None] * len(options), strict=True):
            resolved = _labels_of(inputs, option, done)
            labeled = (
                resolved.valid.any(dim=1)
                if resolved.valid is not None
                else torch.zeros(len(inputs["files"]), dtype=torch.bool)
            )
            keep[name] = labeled if name not in keep else keep[name] & labeled
    return keep


def _datasets(run: RunDir, only: str | None) -> list[str]:
    files = dict(run.prediction_files)
    if not files:
        raise DataError(f"{run.path} holds no predictions/*.npz: pass the folder of a finished run")
    if only is not None:
        run.predictions(only)  # the error names the datasets there are
        return [only]
    return list(files)


def _predictions(run: RunDir, name: str) -> dict[str, Any]:
    """One dataset's saved predictions, over the 1000 classes the label sets use."""
    data = run.predictions(name)
    if data["logits"].shape[1] != NUM_CLASSES:
        raise DataError(
            f"{dict(run.prediction_files)[name]} holds logits over {data['logits'].shape[1]} "
            f"classes, not the {NUM_CLASSES} ImageNet-1k classes the label sets use"
        )
    return data


def _label_inputs(data: Mapping[str, Any]) -> dict[str, Any]:
    """What resolving a label set needs of one dataset's saved predictions
    (:func:`_labels_of`): the file names, the stored label set, the main objects."""
    return {
        "stored": torch.from_numpy(data["valid"]) if "valid" in data else None,
        "files": [str(p).rsplit("/", 1)[-1] for p in data["path"]],
        "main": torch.from_numpy(data["main"].astype("int64")) if "main" in data else None,
    }


def _inputs(run: RunDir, name: str) -> dict[str, Any]:
    """What scoring needs of one dataset's saved predictions: :func:`_label_inputs`, the
    logits, the targets and which images it counted."""
    data = _predictions(run, name)
    return {
        **_label_inputs(data),
        "logits": torch.from_numpy(data["logits"].astype("float32")),
        "target": torch.from_numpy(data["target"]),
        "image_set": scored_image_set(data["path"], data["index"]),  # which images it counted
    }


def _labels_of(
    inputs: Mapping[str, Any],
    option: Mapping[str, Any] | None,
    loaded: tuple[LabelSet, bool] | None,
) -> ResolvedLabels:
    """The label set ``option`` of one dataset's saved predictions (:func:`_label_inputs`)."""
    return resolve_labels(
        option,
        inputs["files"],
        intrinsic=inputs["stored"],
        intrinsic_main=inputs["main"],
        loaded=loaded,
    )


def rescore_run(
    run: RunDir,
    scorer: Scorer,
    labels: Mapping[str, Any] | None,
    only: str | None = None,
    keep: Mapping[str, torch.Tensor] | None = None,
    loaded: tuple[LabelSet, bool] | None = None,
) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """Every metric of ``run``'s saved predictions (of dataset ``only``, or all), with the
    label set ``labels`` (None or ``name: auto``: the ones stored with the predictions) and
    the run's class subsets: ``({dataset: metrics}, {dataset: label-set info})``. ``keep``:
    per dataset, the images whose labels count (the others are scored as unlabeled);
    ``loaded``: the label set of ``labels``, loaded once by the caller. Used
    by ``score`` and by a sweep job whose metric set has grown (sweeps/job.py)."""
    per_dataset, label_info = {}, {}
    for name in _datasets(run, only):
        inputs = _inputs(run, name)
        resolved = _labels_of(inputs, labels, loaded)
        label_info[name] = resolved.info
        valid = resolved.valid
        if keep is not None and valid is not None:
            valid = valid & keep[name][:, None]
        subset = run.info.get("datasets", {}).get(name, {}).get("class_subset")
        per_dataset[name] = scorer.score(
            name, inputs["logits"], inputs["target"], valid, subset, main=resolved.main
        )
        per_dataset[name].update(inputs["image_set"])
    return per_dataset, label_info
