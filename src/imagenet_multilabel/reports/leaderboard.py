"""The leaderboard: one row per model (and preprocessing, and settings), columns per
dataset x metric, timm's published numbers beside ours; written as leaderboard.csv (every
metric), leaderboard.md (the main ones: :mod:`.leaderboard_markdown`) and leaderboard.json
(everything, with each row's runs, failures and notes). Its rows: :mod:`.leaderboard_rows`;
which metrics are main and which way each sorts: the metric catalog
(:mod:`imagenet_multilabel.scoring.metrics.catalog`)."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagenet_multilabel.core.errors import UserError
from imagenet_multilabel.core.files import atomic_write_bytes, write_json
from imagenet_multilabel.reports.image_sets import mixed_image_sets
from imagenet_multilabel.reports.leaderboard_markdown import markdown
from imagenet_multilabel.reports.leaderboard_rows import Row, attach_unfinished, rows_of
from imagenet_multilabel.reports.published import SOURCES, benchmark, compare
from imagenet_multilabel.runs.gather import Job, find_jobs
from imagenet_multilabel.scoring.metrics.catalog import (
    declaration,
    leaderboard_metrics,
    lower_is_better,
)
from imagenet_multilabel.scoring.metrics.names import metric_key, split_metric_key

FILES = ("leaderboard.csv", "leaderboard.md", "leaderboard.json")


@dataclass
class Leaderboard:
    rows: list[Row]
    datasets: list[str]
    sort: str | None
    notes: list[str]
    jobs: list[Job]

    # ------------------------------------------------------------------ columns

    def metric_columns(self, shown_only: bool) -> list[str]:
        """``<dataset>/<metric>`` present in any row: the main metrics first (those the
        catalog declares for leaderboard.md, in its order), then (``shown_only=False``)
        every other one."""
        columns = []
        for dataset in self.datasets:
            present: dict[str, None] = {}
            for row in self.rows:
                present.update(dict.fromkeys(row.metrics.get(dataset, {})))
            names = [
                name
                for shown in leaderboard_metrics()
                for name in present
                if name == shown.name or (shown.by_confidence and declaration(name, ()) is shown)
            ]
            if not shown_only:
                names += [m for m in present if m not in names]
            columns += [metric_key(dataset, m) for m in names]
        return columns

    def compared(self) -> list[tuple[str, str]]:
        """(dataset, metric) pairs that some row has a published number for."""
        pairs: dict[tuple[str, str], None] = {}
        for dataset in self.datasets:
            for row in self.rows:
                for c in row.comparisons.get(dataset, []):
                    pairs[(dataset, c.metric)] = None
        return list(pairs)

    def records(self, shown_only: bool = False) -> list[dict[str, Any]]:
        """One flat dict per row (the CSV's rows)."""
        columns = self.metric_columns(shown_only)
        compared = self.compared()
        out = []
        for rank, row in enumerate(self.rows, start=1):
            pp = row.preprocessing or {}
            size = pp.get("input_size") or [None, None, None]
            rec: dict[str, Any] = {
                "rank": rank if row.done else None,
                "model": row.model,
                "weights": row.weights,
                "settings": row.label,
                "img_size": size[-1],
                "crop_pct": pp.get("crop_pct"),
                "interpolation": pp.get("interpolation"),
                "crop_mode": pp.get("crop_mode"),
                "params_m": None if row.num_params is None else round(row.num_params / 1e6, 3),
                "batch_size": row.batch_size,
                "out_of_memory_at_batch_size": row.out_of_memory_at,
                "label_origin": row.label_origins or None,
            }
            for column in columns:
                rec[column] = row.value(column)
            for dataset, metric in compared:
                c = next((c for c in row.comparisons.get(dataset, []) if c.metric == metric), None)
                key = metric_key(dataset, metric)
                rec[f"{key} timm"] = None if c is None else c.published
                rec[f"{key} diff"] = None if c is None else round(c.diff, 3)
                rec[f"{key} flag"] = None if c is None else c.flag
            rec["images_per_second"] = round(row.images_per_second, 2)
            rec["data_read"] = row.data_read
            rec["status"] = row.status
            rec["error"] = row.error
            out.append(rec)
        return out

    # ------------------------------------------------------------------ writers

    def to_csv(self) -> str:
        records = self.records()
        buf = io.StringIO()
        if records:
            writer = csv.DictWriter(buf, fieldnames=list(records[0]), lineterminator="\n")
            writer.writeheader()
            for rec in records:
                writer.writerow({k: _csv_value(v) for k, v in rec.items()})
        return buf.getvalue()

    def to_markdown(self) -> str:
        return markdown(self)

    def to_json(self) -> dict[str, Any]:
        rows = []
        for row, rec in zip(self.rows, self.records(), strict=True):
            rows.append(
                {
                    **rec,
                    "metrics": row.metrics,
                    "runs": {d: str(p) for d, p in row.runs.items()},
                    "preprocessing": row.preprocessing,
                    "settings_full": row.settings,
                    "published": {
                        d: [
                            {
                                "metric": c.metric,
                                "ours": c.ours,
                                "timm": c.published,
                                "diff": c.diff,
                                "flag": c.flag,
                                "source": c.source,
                                "num_images": c.num_images,
                                "full_size": c.full_size,
                            }
                            for c in cs
                        ]
                        for d, cs in row.comparisons.items()
                    },
                    "image_sets": row.image_sets,
                    "failures": row.failures,
                    "incomplete": row.incomplete,
                }
            )
        return {
            "sort": self.sort,
            "datasets": self.datasets,
            "counts": self.counts(),
            "rows": rows,
            "notes": self.notes,
        }

    def counts(self) -> dict[str, int]:
        out = {"jobs": len(self.jobs)}
        for job in self.jobs:
            out[job.status] = out.get(job.status, 0) + 1
        return out

    def write(self, folder: str | Path) -> list[Path]:
        folder = Path(folder)
        csv_path, md_path, json_path = (folder / name for name in FILES)
        atomic_write_bytes(csv_path, self.to_csv().encode())
        atomic_write_bytes(md_path, self.to_markdown().encode())
        write_json(json_path, self.to_json())
        return [csv_path, md_path, json_path]

    def summary(self) -> str:
        c = self.counts()
        parts = [f"{c.get(s, 0)} {s}" for s in ("done", "failed", "incomplete", "skipped")]
        return f"{c['jobs']} jobs ({', '.join(p for p in parts if not p.startswith('0 '))})"


def _csv_value(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return ""
    return "" if value is None else value


def _sort(rows: list[Row], column: str | None) -> None:
    if column is None:
        rows.sort(key=lambda r: (not r.done, r.model))
        return
    metric = split_metric_key(column)[1]
    sign = 1 if lower_is_better(metric) else -1

    def key(row: Row) -> tuple:
        value = row.value(column)
        return (not row.done, math.isnan(value), sign * (0 if math.isnan(value) else value))

    rows.sort(key=key)


def default_sort(datasets: Sequence[str], rows: Sequence[Row]) -> str | None:
    for dataset in datasets:
        if any("top1" in r.metrics.get(dataset, {}) for r in rows):
            return metric_key(dataset, "top1")
    return None


def _dataset_order(jobs: Sequence[Job]) -> dict[str, None]:
    """The benchmarks timm publishes first (ImageNet val, then ImageNetV2), then the other
    datasets in the order of the job folders."""
    order = {b: i for i, b in enumerate(SOURCES)}
    first: dict[str, int] = {}
    for job in jobs:
        records = job.run.info.get("datasets") or {}
        for name in job.run.datasets:
            rank = order.get(benchmark(records.get(name) or {}, name) or "", len(order))
            first.setdefault(name, rank)
    return dict.fromkeys(sorted(first, key=lambda d: (first[d], list(first).index(d))))


def build(jobs: Sequence[Job], sort: str | None = None) -> Leaderboard:
    if jobs and all(j.status == "skipped" for j in jobs):
        raise UserError(
            f"no evaluation or train.py run to make a leaderboard of: {jobs[0].note}"
            + (f" (and {len(jobs) - 1} more)" if len(jobs) > 1 else "")
        )
    done = [j for j in jobs if j.status == "done"]
    rows, notes = rows_of(done)
    attach_unfinished(rows, [j for j in jobs if j.status in ("failed", "incomplete")])
    notes += [j.note for j in jobs if j.status == "skipped" and j.note]
    datasets = _dataset_order(done)
    for row in rows:
        for dataset, metrics in row.metrics.items():
            found, note = compare(
                row.model,
                row.weights,
                row.preprocessing,
                dataset,
                row.records.get(dataset, {}),
                metrics,
            )
            if found:
                row.comparisons[dataset] = found
            if note:
                notes.append(note)
    notes += _mixed_origins(rows) + mixed_image_sets(rows)
    columns = {metric_key(d, m) for r in rows for d, ms in r.metrics.items() for m in ms}
    if sort is not None and sort not in columns:
        example = default_sort(list(datasets), rows) or "<dataset>/top1"
        raise UserError(f"cannot sort by '{sort}': no run has that metric (e.g. {example})")
    sort = sort or default_sort(list(datasets), rows)
    _sort(rows, sort)
    return Leaderboard(rows, list(datasets), sort, notes, list(jobs))


def _mixed_origins(rows: Sequence[Row]) -> list[str]:
    """A note per dataset whose rows were scored with label sets of different origins (a
    model-made set beside a reviewed one): their multi-label columns do not compare."""
    notes = []
    for dataset in dict.fromkeys(d for r in rows for d in r.records):
        origins = {
            r.records[dataset].get("label_origin") or "no origin recorded"
            for r in rows
            if dataset in r.records and r.records[dataset].get("labels") not in (None, "none")
        }
        if len(origins) > 1 and any(o != "no origin recorded" for o in origins):
            notes.append(
                f"{dataset}: rows scored with label sets of different origins "
                f"({', '.join(sorted(origins))}); their multi-label columns do not compare"
            )
    return notes


def gather(paths: Iterable[str | Path], sort: str | None = None) -> Leaderboard:
    return build(find_jobs(paths), sort)
