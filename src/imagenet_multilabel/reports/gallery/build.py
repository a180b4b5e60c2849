"""Build the gallery of a finished run: read it through
:class:`~imagenet_multilabel.runs.rundir.RunDir`, select the sections' samples, write thumbnails
and the page into a fresh folder, then put that folder in place (a failed build leaves the
previous gallery as it was)."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from imagenet_multilabel.core.errors import DataError, UserError
from imagenet_multilabel.core.files import atomic_write_bytes, replace_dir
from imagenet_multilabel.data.labels.ratings import ratings_for
from imagenet_multilabel.reports.gallery.options import RUN, GalleryOptions, gallery_options
from imagenet_multilabel.reports.gallery.page import DatasetView, render_page
from imagenet_multilabel.reports.gallery.samples import (
    Sample,
    build_samples,
    check_class_space,
    sample_rows,
)
from imagenet_multilabel.reports.gallery.selection import row_stats, select_sections
from imagenet_multilabel.reports.images.exemplars import (
    ExemplarPool,
    pick_exemplars,
    write_exemplars,
)
from imagenet_multilabel.reports.images.photos import ImageLocator, is_composite, labeled_tiles
from imagenet_multilabel.reports.images.thumbnails import write_thumbnails
from imagenet_multilabel.runs.rundir import RunDir

log = logging.getLogger(__name__)

PAGE = "index.html"
THUMBS = "thumbs"
EXEMPLARS = "exemplars"
OptionsNode = DictConfig | Mapping[str, Any] | bool | None


def _datasets(run: RunDir, only: Sequence[str] | str | None) -> list[str]:
    if not run.prediction_files:
        raise DataError(
            f"{run.path} has no predictions/*.npz: the gallery needs a run's per-image "
            "predictions (python evaluate.py writes them)"
        )
    if only is None:
        return list(run.prediction_files)
    names = [only] if isinstance(only, str) else list(only)
    for name in names:
        run.dataset_metrics(name)  # a DataError naming the run's datasets
    return names


def dataset_views(
    run: RunDir, options: GalleryOptions, only=None, pool: ExemplarPool | None = None
) -> list[DatasetView]:
    """Each dataset's summary, sections and the samples they show; with ``pool``, every
    image of the datasets is added to it under its original label (a composite's tiles
    under theirs)."""
    views = []
    for name in _datasets(run, only):
        data = run.predictions(name)
        check_class_space(data, run.prediction_files[name])
        info = (run.info.get("datasets") or {}).get(name) or {}
        composite = is_composite(data["path"], info.get("class"))
        valid = data.get("valid")
        stats = row_stats(data["logits"], valid)
        sections = select_sections(
            stats,
            data["target"],
            per_section=options.per_section,
            seed=options.seed,
            confident=options.confident,
            composite=composite and valid is not None,
        )
        locator = ImageLocator(info.get("root"), options.image_root)
        if pool is not None:
            if composite:
                tiles = labeled_tiles(data)
                pool.add(tiles.keys(), tiles.values(), locator.find)
            else:
                pool.add(data["path"].tolist(), data["target"].tolist(), locator.find)
        rows = (i for s in sections for i in s.rows.tolist())
        ratings = ratings_for(info.get("labels")) if valid is not None else None
        samples = build_samples(data, rows, locator, composite, ratings)
        views.append(
            DatasetView(
                name,
                info,
                run.metrics.get(name, {}),
                valid is not None,
                sections,
                samples,
                _missing_note(name, info.get("root"), samples, options),
            )
        )
    return views


def _exemplar_pool(options: GalleryOptions) -> ExemplarPool | None:
    """An empty pool the run's images fill, a folder's, or None (no exemplars)."""
    if options.exemplars is None:
        return None
    if options.exemplars == RUN:
        return ExemplarPool(options.seed)
    return ExemplarPool.from_folder(options.exemplars, options.seed)


def _card_exemplars(sample: Sample, pool: ExemplarPool) -> dict[int, Path]:
    """A photo of each top-5 class, never one of the card's own (found or not)."""
    own = [t.source or Path(t.file) for t in sample.tiles]
    return pick_exemplars(pool, [c for c, _ in sample.top], avoid=own)


def _with_exemplars(views: list[DatasetView], pool: ExemplarPool) -> list[DatasetView]:
    return [
        dataclasses.replace(
            v, exemplars={i: _card_exemplars(s, pool) for i, s in v.samples.items()}
        )
        for v in views
    ]


def _sources(views: list[DatasetView]) -> list[Path]:
    return [
        t.source for v in views for s in v.samples.values() for t in s.tiles if t.source is not None
    ]


def _missing_note(name: str, view_root: Any, samples: dict, options: GalleryOptions) -> str | None:
    """A line for the page and the log when photos of the samples are not found."""
    tiles = [t for s in samples.values() for t in s.tiles]
    missing = [t for t in tiles if t.source is None]
    if not missing:
        return None
    where = options.image_root or view_root or "the paths stored in the run"
    note = (
        f"{len(missing)} of {len(tiles)} photos not found (e.g. {missing[0].file} under "
        f"{where}): shown as placeholders; if they moved, rebuild with "
        "gallery.image_root=<folder>"
    )
    log.warning("%s: %s", name, note)
    return note


def _output_dir(run: RunDir, options: GalleryOptions) -> Path:
    out = options.output_dir or run.path / "gallery"
    if out.exists():
        if not out.is_dir():
            raise UserError(f"{out} is a file: choose another gallery.output_dir")
        other = {p.name for p in out.iterdir()} - {PAGE, THUMBS, EXEMPLARS}
        if other:
            raise UserError(
                f"{out} holds other files than a gallery (e.g. {sorted(other)[0]}): choose "
                "another gallery.output_dir"
            )
    return out


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_gallery(
    run_dir: str | Path, cfg_node: OptionsNode = None, datasets: Sequence[str] | None = None
) -> Path:
    """Write ``index.html``, ``thumbs/`` and ``exemplars/`` of the run at ``run_dir``
    (default folder: ``<run_dir>/gallery``); returns the page's path. ``cfg_node``: the
    ``gallery:`` options (None or True: the defaults of conf/gallery.yaml)."""
    started = time.perf_counter()
    options = gallery_options(cfg_node)
    run = RunDir(run_dir).view("finetuned")  # a train.py run: its fine-tuned model
    out = _output_dir(run, options)
    pool = _exemplar_pool(options)
    views = dataset_views(run, options, datasets, pool if options.exemplars == RUN else None)
    if pool is not None:
        views = _with_exemplars(views, pool)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        built = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.new."))
    except OSError as e:
        raise UserError(
            f"cannot write the gallery folder {out} ({e.strerror}): choose another with "
            "gallery.output_dir=..."
        ) from None
    try:
        os.chmod(built, 0o777 & ~_umask())  # mkdtemp makes it private (0o700)
        thumbs = write_thumbnails(_sources(views), built / THUMBS, options.thumb_size)
        photos = {p for v in views for chosen in v.exemplars.values() for p in chosen.values()}
        examples = (
            write_exemplars(photos, built / EXEMPLARS, options.exemplar_size) if photos else {}
        )
        page = render_page(
            run.info,
            run.path.resolve(),
            views,
            thumbs,
            options.seed,
            options.per_section,
            examples,
        )
        atomic_write_bytes(built / PAGE, page.encode("utf-8"))
        replace_dir(built, out)
    except BaseException:
        shutil.rmtree(built, ignore_errors=True)
        raise
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    shown = sum(len(s.rows) for v in views for s in v.sections)
    log.info(
        "wrote %s (%d images in %d sections, %.1f MB with %d thumbnails and %d exemplars, %.1f s)",
        out / PAGE,
        shown,
        sum(len(v.sections) for v in views),
        size / 1e6,
        len(thumbs),
        len(examples),
        time.perf_counter() - started,
    )
    return out / PAGE


def gallery_rows(
    run_dir: str | Path, cfg_node: OptionsNode = None, datasets: Sequence[str] | None = None
) -> list[dict[str, object]]:
    """The page's samples as plain dicts (one per image and section, same seed, same
    order; see :func:`~imagenet_multilabel.reports.gallery.samples.sample_rows`)."""
    options = gallery_options(cfg_node)
    views = dataset_views(RunDir(run_dir).view("finetuned"), options, datasets)
    return [row for v in views for row in sample_rows(v.name, v.sections, v.samples)]


def gallery(cfg: DictConfig) -> dict[str, float]:
    """The task of ``python -m imagenet_multilabel gallery``."""
    if not cfg.get("run_dir"):
        raise UserError("no run given: pass run_dir=outputs/evaluate/<run>")
    started = time.perf_counter()
    only = cfg.get("dataset")
    page = write_gallery(cfg.run_dir, cfg.get("gallery"), None if only is None else [str(only)])
    seconds = time.perf_counter() - started
    print(f"gallery: {page}")
    return {"seconds": seconds}
