"""gap: the accuracy gap between two evaluated datasets and how much of it their
label-count distributions explain (see analysis/gap.py).

    python -m imagenet_multilabel.gap a=outputs/evaluate/<v1 run> b=outputs/evaluate/<v2 run>
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from ..analysis.gap import explain_gap, gap_markdown, plot_gap, rows_as_dicts, subgroup_weights
from ..errors import DataError, UserError
from ..outputs import atomic_write_bytes, read_json, write_json

log = logging.getLogger(__name__)


def dataset_metrics(run_dir: Path, dataset: str | None) -> tuple[dict[str, float], str]:
    """The metrics of one dataset of a run (``<dataset>/<metric>`` keys when it has several)."""
    metrics = read_json(run_dir / "metrics.json")
    prefixes = sorted({k.split("/", 1)[0] for k in metrics if "/" in k})
    if not prefixes:
        return metrics, dataset or run_dir.name
    if dataset is None:
        if len(prefixes) > 1:
            raise UserError(
                f"{run_dir} holds datasets {', '.join(prefixes)}: choose one with "
                "a_dataset=... / b_dataset=..."
            )
        dataset = prefixes[0]
    if dataset not in prefixes:
        raise DataError(f"{run_dir} has no dataset '{dataset}' (it has {', '.join(prefixes)})")
    cut = len(dataset) + 1
    return {k[cut:]: v for k, v in metrics.items() if k.startswith(dataset + "/")}, dataset


def gap(cfg: DictConfig) -> dict[str, float]:
    if not cfg.get("a") or not cfg.get("b"):
        raise UserError("pass two finished runs: a=<run dir> b=<run dir>")
    a, a_label = dataset_metrics(Path(cfg.a), cfg.get("a_dataset"))
    b, b_label = dataset_metrics(Path(cfg.b), cfg.get("b_dataset"))
    rows = explain_gap(a, b, a_label, b_label)
    out = Path(cfg.paths.output_dir)
    text = gap_markdown(
        rows, a_label, b_label, subgroup_weights(a, a_label), subgroup_weights(b, b_label)
    )
    atomic_write_bytes(out / "gap.md", text.encode())
    write_json(
        out / "gap.json",
        {
            "a": {"run": str(cfg.a), "dataset": a_label},
            "b": {"run": str(cfg.b), "dataset": b_label},
            "rows": rows_as_dicts(rows),
        },
    )
    plot_gap(a, b, a_label, b_label, out / "gap.png")
    print(text)
    flat = {}
    for r in rows:
        flat[f"{r.metric}/gap"] = r.gap
        if r.explained is not None:
            flat[f"{r.metric}/explained"] = r.explained
            flat[f"{r.metric}/residual"] = r.residual
    return flat
