"""gap: the accuracy gap between two evaluated datasets and how much of it their
label-count distributions explain (see reports/analysis/reweighting.py).

    python -m imagenet_multilabel gap a=outputs/evaluate/<v1 run> b=outputs/evaluate/<v2 run>
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from imagenet_multilabel.core.errors import UserError
from imagenet_multilabel.core.files import atomic_write_bytes, write_json
from imagenet_multilabel.reports.analysis.reweighting import (
    explain_gap,
    gap_markdown,
    plot_gap,
    rows_as_dicts,
    subgroup_weights,
)
from imagenet_multilabel.runs.rundir import RunDir

log = logging.getLogger(__name__)


def gap(cfg: DictConfig) -> dict[str, float]:
    if not cfg.get("a") or not cfg.get("b"):
        raise UserError("pass two finished runs: a=<run dir> b=<run dir>")
    # a train.py run: its fine-tuned model's metrics (``<set>/finetuned.<metric>``)
    a_label, a = RunDir(cfg.a).view("finetuned").dataset_metrics(cfg.get("a_dataset"))
    b_label, b = RunDir(cfg.b).view("finetuned").dataset_metrics(cfg.get("b_dataset"))
    if a_label == b_label:  # e.g. two runs of one dataset: tell the columns apart
        a_label, b_label = f"{a_label} (a)", f"{b_label} (b)"
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
