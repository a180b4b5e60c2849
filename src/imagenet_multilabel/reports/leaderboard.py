"""The leaderboard: one row per model (and preprocessing, and settings), columns per
dataset x metric, timm's published numbers beside ours; written as leaderboard.csv (every
metric), leaderboard.md (the main ones) and leaderboard.json (everything, with each row's
runs, failures and notes)."""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagenet_multilabel.core.config import dotted
from imagenet_multilabel.core.errors import UserError
from imagenet_multilabel.core.files import atomic_write_bytes, write_json
from imagenet_multilabel.reports.at_scale import short_note, summary_lines
from imagenet_multilabel.reports.published import SOURCES, Comparison, benchmark, compare
from imagenet_multilabel.runs.gather import Job, find_jobs
from imagenet_multilabel.scoring.metrics.names import metric_key, split_metric_key

log = logging.getLogger(__name__)

# the metrics leaderboard.md shows per dataset (leaderboard.csv / .json have all)
SHOWN = (
    "top1",
    "top5",
    "real_top1",
    "vartopk_strict",
    "vartopk_partial",
    "asma",
    "map_macro",
    "ece",
    "confident_errors_valid@p>=0.5",
    "confident_errors_valid@p>=0.8",
)
LOWER_IS_BETTER = {"ece", "nll", "hamming_loss", "ece_multilabel"}
# run.json entries that do not tell two runs' results apart (machine, timing, speed-only
# settings) or that are columns already (model, preprocessing, datasets)
NOT_SETTINGS = (
    "task",
    "model",
    "preprocessing",
    "datasets",
    "versions",
    "git_commit",
    "host",
    "wall_seconds",
    "validate_seconds",
    "images_per_second",
    "timings",
    "resources",
    "num_images",
    "num_workers",
    "cpu_threads",
    "cpu_parallel",
    "keep_freed_memory",
    "rescored",
    "predictions_from",
    "decode_cache",
    "trainer.devices",
    "trainer.num_nodes",
    "trainer.world_size",
)
FILES = ("leaderboard.csv", "leaderboard.md", "leaderboard.json")
TEXT_COLUMNS = (
    "model",
    "weights",
    "settings",
    "labels",
    "input",
    "batch",
    "data read",
    "status",
)


def _dropped(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in NOT_SETTINGS)


def settings_of(info: Mapping[str, Any], head: Any = None) -> dict[str, Any]:
    """The entries of run.json that may change results, flattened (``trainer.precision``),
    with the heads' configuration (``head.multilabel.mode``) where job.json records it."""
    out = {k: v for k, v in dotted(info).items() if not _dropped(k)}
    if head:
        out.update(dotted({"head": head}))
    return out


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


# what a job's configuration has of its datasets: the leaderboard's columns, not its rows
DATASET_KEYS = ("data", "labels")


def _config_part(identity: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in identity.items() if k not in DATASET_KEYS}


def config_key(identity: Mapping[str, Any] | None) -> str | None:
    """What makes a leaderboard row of a job's configuration (job.json's or failed.json's
    ``identity``): all of it (model, weights, preprocessing, settings) but its datasets,
    which are the row's columns."""
    if not isinstance(identity, Mapping) or not identity.get("model"):
        return None
    return _key(_config_part(identity))


def _config_label(config: Mapping[str, Any], others: Sequence[Row]) -> str:
    """``preprocess.img_size=192``: how an unfinished job's configuration differs from
    that of another row of its model."""
    mine = dotted(config)
    for row in others:
        if row.config is None:
            continue
        theirs = dotted(row.config)
        differ = [k for k in sorted(set(mine) | set(theirs)) if mine.get(k) != theirs.get(k)]
        if differ:
            return ", ".join(f"{k}={_short(mine.get(k))}" for k in differ)
    return ""


def _short(value: Any, width: int = 48) -> str:
    text = value if isinstance(value, str) else _key(value)
    return text if len(text) <= width else "..." + text[-(width - 3) :]


@dataclass
class Row:
    model: str
    weights: str | None
    preprocessing: dict[str, Any] | None
    settings: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    num_params: int | None = None
    runs: dict[str, Path] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    comparisons: dict[str, list[Comparison]] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    incomplete: list[dict[str, Any]] = field(default_factory=list)
    images: int = 0
    seconds: float = 0.0
    # the batch size its runs ran at (run.json), and the one that ran out of memory
    # before a resume retried it smaller (sweeps/memory.py)
    batch_size: int | None = None
    out_of_memory_at: int | None = None
    # the configurations of the row's jobs (less their datasets): an unfinished job joins
    # the row of its own configuration only
    config_keys: set[str] = field(default_factory=set)
    config: dict[str, Any] | None = None  # one job's

    # when a sweep job planned on its data (job.json), for runs whose run.json lacks it
    planned_read: list[str] = field(default_factory=list)

    @property
    def data_read(self) -> str | None:
        """When the row's data were read (the oldest of its datasets' fingerprints in
        run.json, else in job.json)."""
        times = [
            str(fp["read"])
            for record in self.records.values()
            if isinstance(fp := record.get("fingerprint"), Mapping) and fp.get("read")
        ]
        times = times or self.planned_read
        return min(times) if times else None

    @property
    def done(self) -> bool:
        return bool(self.metrics)

    @property
    def status(self) -> str:
        if not self.done:
            if self.failures:
                return "failed"
            return "incomplete"
        return "partial" if self.failures or self.incomplete else "done"

    @property
    def error(self) -> str:
        """The failures' reasons, each once (with their datasets on a partial row)."""
        reasons = (
            f"{','.join(f['datasets']) or '?'}: {f['error']}" if self.done else f["error"]
            for f in self.failures
        )
        return "; ".join(dict.fromkeys(reasons))

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else math.nan

    @property
    def label_origins(self) -> str:
        """``<dataset>: <label set> (<origin>)`` of the datasets scored with a label file
        that records its origin (reviewed by N people, model-made); empty where none."""
        return "; ".join(
            f"{d}: {r.get('labels')} ({r['label_origin']})"
            for d, r in self.records.items()
            if r.get("label_origin")
        )

    def value(self, column: str) -> float:
        dataset, metric = split_metric_key(column)
        value = self.metrics.get(dataset, {}).get(metric)
        return math.nan if value is None else float(value)

    def add_run(self, job: Job) -> None:
        run = job.run
        info = run.info
        self.num_params = (info.get("model") or {}).get("num_params", self.num_params)
        self.batch_size = info.get("batch_size", self.batch_size)
        retry = info.get("out_of_memory_retry")
        if isinstance(retry, Mapping):
            self.out_of_memory_at = retry.get("failed_batch_size")
        for dataset in run.datasets:
            self.runs[dataset] = job.path
            self.metrics[dataset] = dict(run.metrics[dataset])
            self.records[dataset] = dict((info.get("datasets") or {}).get(dataset) or {})
        data = (job.record or {}).get("data")
        if isinstance(data, Mapping):
            self.planned_read += [
                str(fp["read"])
                for fp in data.values()
                if isinstance(fp, Mapping) and fp.get("read")
            ]
        identity = (job.record or {}).get("identity")
        key = config_key(identity)
        if key is not None:
            self.config_keys.add(key)
            self.config = self.config or _config_part(identity)
        rate = info.get("images_per_second")
        images = int(info.get("num_images") or 0)
        if rate and images:
            self.images += images
            self.seconds += images / float(rate)


@dataclass
class Leaderboard:
    rows: list[Row]
    datasets: list[str]
    sort: str | None
    notes: list[str]
    jobs: list[Job]

    # ------------------------------------------------------------------ columns

    def metric_columns(self, shown_only: bool) -> list[str]:
        """``<dataset>/<metric>`` present in any row: the main metrics first, in
        :data:`SHOWN` order, then (``shown_only=False``) every other one."""
        columns = []
        for dataset in self.datasets:
            present: dict[str, None] = {}
            for row in self.rows:
                present.update(dict.fromkeys(row.metrics.get(dataset, {})))
            names = [m for m in SHOWN if m in present]
            if not shown_only:
                names += [m for m in present if m not in SHOWN]
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


# ------------------------------------------------------------------------- building


def _preprocessing_key(pp: Mapping[str, Any] | None) -> str:
    """Runs recorded before ``hflip`` existed match runs with ``hflip: false``."""
    return _key({k: v for k, v in (pp or {}).items() if not (k == "hflip" and not v)})


def _rows_of(jobs: Sequence[Job]) -> tuple[list[Row], list[str]]:
    """Finished runs merged into rows: a row per (model, weights, preprocessing, settings);
    runs of one such key that share a dataset go into separate rows."""
    notes: list[str] = []
    groups: dict[tuple, list[Row]] = {}
    for job in jobs:
        info = job.run.info
        model = info.get("model") or {}
        pp = info.get("preprocessing")
        settings = settings_of(info, (job.record or {}).get("head"))
        key = (job.model, model.get("weights"), _preprocessing_key(pp), _key(settings))
        rows = groups.setdefault(key, [])
        row = next((r for r in rows if not set(r.runs) & set(job.run.datasets)), None)
        if row is None:
            row = Row(job.model, model.get("weights"), pp, settings)
            rows.append(row)
        row.add_run(job)
    rows = [row for rs in groups.values() for row in rs]
    by_model: dict[tuple, list[Row]] = {}
    for row in rows:
        by_model.setdefault((row.model, row.weights, _preprocessing_key(row.preprocessing)), [])
        by_model[(row.model, row.weights, _preprocessing_key(row.preprocessing))].append(row)
    for (model, _, _), same in by_model.items():
        if len(same) > 1:
            notes.append(_label(model, same))
    return rows, notes


def _descriptor(row: Row) -> dict[str, Any]:
    desc = dict(row.settings)
    for dataset, record in row.records.items():
        for k, v in dotted(record).items():
            if k != "num_images" and not k.startswith("fingerprint."):
                desc[f"{dataset}.{k}"] = v
    return desc


def _label(model: str, rows: list[Row]) -> str:
    """Tell apart rows of one model and preprocessing by the settings that differ."""
    descs = [_descriptor(r) for r in rows]
    keys = sorted({k for d in descs for k in d})
    differing = [k for k in keys if len({_key(d[k]) for d in descs if k in d}) > 1]
    labels = [", ".join(f"{k}={_short(d[k])}" for k in differing if k in d) for d in descs]
    for row, label in zip(rows, labels, strict=True):
        if not label or labels.count(label) > 1:  # the same settings: the run folders
            names = sorted({p.name for p in row.runs.values()})
            label = ", ".join(filter(None, [label, "run=" + "+".join(names)]))
        row.label = label
    what = ", ".join(differing) if differing else "nothing but their run folders"
    return (
        f"{len(rows)} rows for {model}: its runs of one dataset differ in {what}; "
        "all kept, told apart in the settings column"
    )


def _attach_unfinished(rows: list[Row], jobs: Sequence[Job]) -> None:
    """Failed and incomplete jobs go to their model's (first) row, else to a row of their
    own (one per model)."""
    for job in jobs:
        entry = {"job": str(job.path), "datasets": job.datasets}
        if job.status == "failed":
            entry["error"] = str((job.failure or {}).get("error") or "failed (no reason recorded)")
        identity = (job.failure or {}).get("identity") if job.failure else job.config
        key = config_key(identity)
        if key is not None:  # the row of the same model, weights and preprocessing only
            mine = [r for r in rows if key in r.config_keys]
        else:  # recorded by an older version: its model's row
            mine = [r for r in rows if r.model == job.model and r.done]
            mine = mine or [r for r in rows if r.model == job.model]
        if not mine:
            weights = ((job.failure or job.config or {}).get("model") or {}).get("weights")
            row = Row(job.model, weights, None)
            if key is not None:
                row.config_keys.add(key)
                row.config = _config_part(identity)
                same_model = [r for r in rows if r.model == job.model]
                if same_model:  # told apart from the others
                    label = _config_label(row.config, same_model)
                    row.label = label or f"job={job.path.name}"
                    for other in same_model:
                        if not other.label and other.config is not None:
                            other.label = _config_label(other.config, [row])
            rows.append(row)
            mine = [row]
        target = mine[0]
        (target.failures if job.status == "failed" else target.incomplete).append(entry)


def _sort(rows: list[Row], column: str | None) -> None:
    if column is None:
        rows.sort(key=lambda r: (not r.done, r.model))
        return
    metric = split_metric_key(column)[1]
    sign = 1 if metric in LOWER_IS_BETTER else -1

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
    rows, notes = _rows_of(done)
    _attach_unfinished(rows, [j for j in jobs if j.status in ("failed", "incomplete")])
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
    notes += _mixed_origins(rows)
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


# ------------------------------------------------------------------------- markdown


def _fmt(value: Any, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:+.2f}" if signed else f"{value:.2f}"
    return str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def input_text(pp: Mapping[str, Any] | None) -> str:
    """A row's preprocessing in one cell: ``224 / 0.875 / bicubic`` (size, crop_pct,
    interpolation)."""
    if not pp:
        return "-"
    size = (pp.get("input_size") or [None])[-1]
    flip = " / hflip" if pp.get("hflip") else ""
    return f"{size} / {pp.get('crop_pct'):g} / {pp.get('interpolation')}{flip}"


def weights_text(weights: str | None, width: int = 40) -> str:
    """A row's weights in one cell: ``hub:timm/...``, ``none`` (random), or a checkpoint's
    path shortened to its end (``checkpoint:.../run/best.ckpt``)."""
    if not weights:
        return "-"
    kind, sep, where = weights.partition(":")
    if sep and kind in ("checkpoint", "fine-tuned") and len(weights) > width:
        return f"{kind}:{_short(where, width - len(kind) - 1)}"
    return weights


def markdown(board: Leaderboard) -> str:
    columns = board.metric_columns(shown_only=True)
    compared = set(board.compared())
    labels = any(r.label for r in board.rows)
    origins = any(r.label_origins for r in board.rows)
    head = ["#", "model", "weights"] + (["settings"] if labels else [])
    head += ["labels"] if origins else []
    head += ["input", "params (M)", "batch"]
    for column in columns:
        dataset, metric = split_metric_key(column)
        head.append(column)
        if (dataset, metric) in compared:
            head += [f"{column} timm", "diff", "flag"]
    head += ["img/s", "data read", "status"]
    lines = [
        "# Leaderboard",
        "",
        f"{board.summary()}; sorted by {board.sort or 'model'}. *timm*: timm's published "
        "number for the same weights, benchmark and preprocessing; *flag*: |diff| over 0.3 "
        "points ((subset): the run covers part of the benchmark, so a difference is expected).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" if h in TEXT_COLUMNS else "---:" for h in head) + "|",
    ]
    summary = summary_lines(board)  # reports/at_scale.py: a large board's summary first
    if summary:
        lines[4:4] = summary
    for rank, row in enumerate(board.rows, start=1):
        inp = input_text(row.preprocessing)
        params = "-" if row.num_params is None else f"{row.num_params / 1e6:.2f}"
        cells = [str(rank) if row.done else "-", row.model, weights_text(row.weights)]
        cells += [row.label] if labels else []
        cells += [row.label_origins or "-"] if origins else []
        batch = "-" if row.batch_size is None else str(row.batch_size)
        if row.out_of_memory_at is not None:
            batch += f" (out of memory at {row.out_of_memory_at})"
        cells += [inp, params, batch]
        for column in columns:
            dataset, metric = split_metric_key(column)
            cells.append(_fmt(row.value(column)))
            if (dataset, metric) in compared:
                c = next((c for c in row.comparisons.get(dataset, []) if c.metric == metric), None)
                cells += (
                    ["-", "-", ""]
                    if c is None
                    else [_fmt(c.published), _fmt(c.diff, signed=True), c.flag]
                )
        status = row.status + (f": {row.error}" if row.failures else "")
        cells += [_fmt(row.images_per_second) if row.done else "-", row.data_read or "-", status]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    unfinished = [(r, f) for r in board.rows for f in r.failures + r.incomplete]
    if unfinished:
        lines += [
            "",
            "## Failed and incomplete jobs",
            "",
            "| model | datasets | job | reason |",
            "|---|---|---|---|",
        ]
        for row, f in unfinished:
            reason = f.get("error", "incomplete: stopped before it finished (run the sweep again)")
            lines.append(
                f"| {row.model} | {', '.join(f['datasets']) or '?'} | {Path(f['job']).name} | "
                f"{_cell(reason)} |"
            )
    if board.notes:
        lines += ["", "## Notes", ""] + [f"- {_cell(short_note(n))}" for n in board.notes]
    return "\n".join(lines) + "\n"
