"""Weights & Biases for evaluations (``logger=wandb``): the multi-label story, not only
scalars.

Per job (one W&B run, grouped by sweep in a multirun, named by the job's folder):

- the resolved config and the run's record (model, preprocessing, datasets, versions);
- every metric, leaving out the NaN entries of empty label-count subgroups;
- ``subgroups``: a table of label count -> images and the metrics declared per subgroup
  (top1, real_top1, vartopk_strict; main_top1 where written);
- ``per_image``: a sampled table of images (thumbnail, original label, valid labels, top-5
  classes with probabilities, whether a "wrong" top-1 is a valid label), from
  :func:`~imagenet_multilabel.reports.per_image.per_image_rows`;
- the label-count and gap plots as images.

At the end of a sweep the leaderboard and its figures go to a run of their own
(:func:`log_leaderboard`). Rank 0 only; a run is always finished, also on an error.
``WANDB_MODE=offline`` works without network (``wandb sync`` uploads later).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from imagenet_multilabel.reports.figures import run_figures
from imagenet_multilabel.reports.images.thumbnails import strip
from imagenet_multilabel.reports.per_image import per_image_rows
from imagenet_multilabel.runs.rundir import RunDir
from imagenet_multilabel.scoring.metrics.catalog import METRICS
from imagenet_multilabel.scoring.metrics.names import LABEL_GROUPS as GROUPS
from imagenet_multilabel.scoring.metrics.names import SUBGROUP_COUNT, subgroup

PER_IMAGE_COLUMNS = (
    "dataset",
    "index",
    "image",
    "file",
    "label",
    "valid_labels",
    "top5",
    "top1_correct",
    "wrong_top1_is_valid",
)


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not (
        isinstance(value, float) and (math.isnan(value) or math.isinf(value))
    )


def _sweep_names() -> tuple[str | None, str | None]:
    """(group, run name) of a multirun job: the sweep folder's and the job folder's names."""

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None, None
    hydra = HydraConfig.get()
    return Path(str(hydra.sweep.dir)).name, Path(str(hydra.runtime.output_dir)).name


def subgroup_columns(metrics: Mapping[str, Mapping[str, float]]) -> list[str]:
    """The measures declared per label-count subgroup (the catalog's ``by_label_count``)
    that some dataset of ``metrics`` has, in the catalog's order: ``top1``, ``real_top1``,
    ``vartopk_strict``, and ``main_top1`` where a label set names main objects."""
    have = {k for m in metrics.values() for k in m}
    return [
        d.name
        for d in METRICS
        if d.by_label_count and d.unit != "count" and subgroup(d.name, GROUPS[0]) in have
    ]


def subgroup_rows(
    metrics: Mapping[str, Mapping[str, float]], columns: list[str] | None = None
) -> list[list[Any]]:
    """``[dataset, labels, images, *columns]`` per label-count subgroup of each dataset
    that has them (an empty subgroup: 0 images, no values); ``columns``: by default
    :func:`subgroup_columns`."""
    columns = subgroup_columns(metrics) if columns is None else columns
    rows = []
    for dataset, m in metrics.items():
        if subgroup(SUBGROUP_COUNT, GROUPS[0]) not in m:
            continue
        for g in GROUPS:
            n = int(m.get(subgroup(SUBGROUP_COUNT, g)) or 0)
            values = [m.get(subgroup(k, g)) for k in columns]
            rows.append([dataset, g, n, *[v if n and finite(v) else None for v in values]])
    return rows


class WandbEvalLogger(WandbLogger):
    """Lightning's W&B logger with what an evaluation needs (see the module docstring).

    Args (beyond :class:`WandbLogger`'s): ``per_image`` images sampled per dataset for the
    per-image table (0: none), ``thumbnail`` their height in pixels, ``seed`` the sample.
    """

    def __init__(
        self,
        *args: Any,
        per_image: int = 32,
        thumbnail: int = 96,
        seed: int = 0,
        group: str | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        sweep, job = _sweep_names()
        super().__init__(*args, group=group or sweep, name=job or name, **kwargs)
        self.per_image, self.thumbnail_size, self.seed = int(per_image), int(thumbnail), seed

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Every metric but NaN entries (empty label-count subgroups have no accuracy)."""
        super().log_metrics({k: v for k, v in metrics.items() if finite(v)}, step)

    @rank_zero_only
    def log_config(self, cfg: DictConfig) -> None:
        """The resolved config (without Hydra's own node)."""
        task_cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
        config = OmegaConf.to_container(task_cfg, resolve=True, throw_on_missing=False)
        self.experiment.config.update(config, allow_val_change=True)

    @rank_zero_only
    def log_run(self, run_dir: str | Path) -> None:
        """What a finished run's folder holds: its record, the subgroup and per-image
        tables, and its figures."""
        import wandb  # wandb is slow to import: only when a W&B run is logged

        run = RunDir(run_dir)
        record = {k: v for k, v in run.info.items() if k not in ("host", "versions")}
        self.experiment.config.update({"run": record}, allow_val_change=True)
        logged: dict[str, Any] = {}
        measures = subgroup_columns(run.metrics)
        rows = subgroup_rows(run.metrics, measures)
        if rows:
            columns = ["dataset", "labels", "images", *measures]
            logged["subgroups"] = wandb.Table(columns=columns, data=rows)
        if self.per_image > 0 and run.prediction_files:
            logged["per_image"] = self._per_image_table(run)
        title = str((run.info.get("model") or {}).get("name") or run.path.name)
        for path in run_figures(run.metrics, run.path / "figures", title):
            logged[f"plots/{path.stem}"] = wandb.Image(str(path))
        if logged:
            self.experiment.log(logged)
        summary = {k: v for k, v in run.info.items() if k in ("images_per_second", "num_images")}
        self.experiment.summary.update(summary)

    def _per_image_table(self, run: RunDir):
        import wandb  # wandb is slow to import: only when a W&B run is logged

        table = wandb.Table(columns=list(PER_IMAGE_COLUMNS))
        for row in per_image_rows(run, self.per_image, self.seed):
            image = strip(row.files, self.thumbnail_size)
            d = row.as_dict()
            table.add_data(
                row.dataset,
                row.index,
                None if image is None else wandb.Image(image, caption=d["label"]),
                row.path,
                d["label"],
                None if d["valid_labels"] is None else ", ".join(d["valid_labels"]),
                "\n".join(d["top5"]),
                row.correct,
                row.wrong_but_valid,
            )
        return table

    def finish(self, failed: bool = False) -> None:
        """End the W&B run (exit code 1 when the job failed); a multirun's next job starts
        its own."""
        if self._experiment is not None:
            self._experiment.finish(exit_code=1 if failed else 0)


def log_leaderboard(
    records: Sequence[Mapping[str, Any]],
    figures: Sequence[Path],
    *,
    project: str,
    group: str,
    folder: Path,
    config: Mapping[str, Any] | None = None,
    mode: str | None = None,
) -> None:
    """The end of a sweep: its leaderboard as a table and its figures, in a W&B run of the
    sweep's group (job type ``leaderboard``)."""
    import wandb  # wandb is slow to import: only when a W&B run is logged

    run = wandb.init(
        project=project,
        group=group,
        job_type="leaderboard",
        name=f"leaderboard {group}",
        dir=str(folder),
        config=dict(config or {}),
        mode=mode,
        reinit="create_new",
    )
    try:
        logged: dict[str, Any] = {}
        if records:
            columns = list(records[0])
            data = [
                [
                    v if v is None or not isinstance(v, float) or finite(v) else None
                    for v in r.values()
                ]
                for r in records
            ]
            logged["leaderboard"] = wandb.Table(columns=columns, data=data)
        for path in figures:
            if Path(path).suffix == ".png":
                logged[f"figures/{Path(path).stem}"] = wandb.Image(str(path))
        run.log(logged)
    finally:
        run.finish()
