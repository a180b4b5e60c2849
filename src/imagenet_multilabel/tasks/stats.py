"""The ``stats`` task: label-count statistics of one or more label sets.

Writes ``stats.json``, ``label_stats.txt`` (the comparison table) and
``label_counts.png`` to the run's output folder and returns flat metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, ListConfig, OmegaConf

from imagenet_multilabel.builders import build_dataset, dataset_specs
from imagenet_multilabel.core.config import config_option
from imagenet_multilabel.core.errors import UserError
from imagenet_multilabel.core.files import atomic_write_bytes, write_json
from imagenet_multilabel.data.labels.options import command_overrides, expand_points, label_options
from imagenet_multilabel.data.labels.originals import original_labels
from imagenet_multilabel.data.labels.sets import LabelSet, load_label_set
from imagenet_multilabel.reports.analysis.label_compare import (
    compare_label_sets,
    render_agreement,
    render_comparisons,
)
from imagenet_multilabel.reports.analysis.label_stats import (
    label_stats,
    plot_label_counts,
    render_table,
)
from imagenet_multilabel.scoring.metrics.names import metric_key


def _label_sets(node: Any) -> list[LabelSet]:
    """Instantiate ``cfg.labels``: one Hydra node or a list of them; ``none`` nodes skipped."""
    nodes = list(node) if isinstance(node, (list, tuple, ListConfig)) else [node]
    sets = []
    for item in nodes:
        if isinstance(item, DictConfig):
            item = OmegaConf.to_container(item, resolve=True)
        if dict(item).get("_target_") is None:  # labels=none
            continue
        sets.append(load_label_set(item)[0])
    return sets


def _first(nodes: list) -> Any:
    node = nodes[0]
    return node if hasattr(node, "get") else {}


def _dataset_files(data: Any) -> list[str] | None:
    """The file names of ``data=...`` (every dataset of a suite), to restrict the
    statistics to the images one has; None without a data option."""
    if not data:
        return None
    files: list[str] = []
    for key, spec in dataset_specs(data).items():
        files += build_dataset(spec, None, None if key == "data" else key).file_names
    return files


def _output_dir(output_dir: str | Path | None) -> Path:
    if output_dir is not None:
        return Path(output_dir)

    return Path(HydraConfig.get().runtime.output_dir)


def stats(cfg: Mapping[str, Any], output_dir: str | Path | None = None) -> dict[str, float]:
    """Compute, print and save label statistics of ``cfg.labels`` (several with
    ``labels=[a,b]`` or ``labels.min_score=[...]``) and of ``cfg.compare``; the raters'
    agreement behind a set that has it; the first set against each other one on the
    images both annotate.

    Returns:
        ``{"<name>/images": ..., "<name>/empty": ..., "<name>/labels_<k>": ...,
        "<name>/multi_share": ..., "<name>/multi_share_labeled": ...,
        "<name>/labels_per_image": ..., "<name>/unanimous": ..., "<a>-vs-<b>/same_set": ...}``.
    """
    nodes = label_options(cfg["labels"], command_overrides())
    for name in cfg.get("compare") or []:
        nodes += expand_points(OmegaConf.to_container(config_option("labels", str(name))))
    sets = _label_sets(nodes)
    sets = [s for i, s in enumerate(sets) if s.name not in {t.name for t in sets[:i]}]
    if not sets:
        raise UserError("no label set to describe: choose one, e.g. labels=real")
    files = _dataset_files(cfg.get("data"))
    allow_missing = bool(_first(nodes).get("allow_missing", False)) if nodes else False
    results = [label_stats(s, files, allow_missing=allow_missing) for s in sets]
    rated = next((s for s in sets if s.ratings is not None), None)
    agreement = rated.ratings.agreement() if rated is not None else None
    original = dict(original_labels())
    pairs = [compare_label_sets(sets[0], other, original) for other in sets[1:]]
    out = _output_dir(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = render_table(results)
    if agreement is not None:
        table += "\n" + render_agreement(rated.name.split("@")[0], agreement)
    if pairs:
        table += "\n" + render_comparisons(pairs)
    print(table)
    atomic_write_bytes(out / "label_stats.txt", (table + "\n").encode())
    record: dict[str, Any] = {r.name: r.to_dict() for r in results}
    if agreement is not None:
        record["raters"] = agreement
    if pairs:
        record["compared"] = [p.to_dict() for p in pairs]
    write_json(out / "stats.json", record)
    plot_label_counts(results, out / "label_counts.png")
    metrics: dict[str, float] = {}
    for r in results:
        metrics[metric_key(r.name, "images")] = r.images
        metrics[metric_key(r.name, "empty")] = r.empty
        for b, n in r.by_count.items():
            if b != "0":
                metrics[metric_key(r.name, f"labels_{b}")] = n
        metrics[metric_key(r.name, "multi_share")] = r.multi_share
        metrics[metric_key(r.name, "multi_share_labeled")] = r.multi_share_labeled
        metrics[metric_key(r.name, "labels_per_image")] = r.labels_per_image
    if agreement is not None:
        for key in ("unanimous", "unanimous_yes", "unanimous_no", "yes_and_no"):
            metrics[metric_key("raters", key)] = agreement[key]
    for p in pairs:
        for key in ("common", "same_set", "same_count", "mean_jaccard", "same_original"):
            metrics[metric_key(f"{p.first}-vs-{p.second}", key)] = getattr(p, key)
    return metrics
