"""The gallery page: one static HTML file with its CSS, JavaScript and plots inline (it
opens from disk, with no server, network or build step); thumbnails are files beside it."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from importlib.resources import files
from pathlib import Path
from typing import Any

from imagenet_multilabel.core.classes import class_names, wnids
from imagenet_multilabel.reports.gallery.samples import Sample, Tile
from imagenet_multilabel.reports.gallery.selection import Section
from imagenet_multilabel.scoring.metrics.names import LABEL_GROUPS, SUBGROUP_COUNT, subgroup

SUMMARY_METRICS = ("top1", "real_top1", "vartopk_strict", "asma")
SINGLE_LABEL_METRICS = ("top1", "top5")  # a dataset without a label set


@dataclass(frozen=True)
class DatasetView:
    """Everything the page shows of one dataset."""

    name: str
    info: Mapping[str, Any]  # its entry in run.json's "datasets"
    metrics: Mapping[str, float]
    has_labels: bool
    sections: list[Section]
    samples: dict[int, Sample]
    photo_note: str | None = None  # photos not found
    # dataset row -> {top-5 class: a photo of that class} (see exemplars.py)
    exemplars: Mapping[int, Mapping[int, Path]] = field(default_factory=dict)


def _asset(name: str) -> str:
    return files("imagenet_multilabel").joinpath("assets", "gallery", name).read_text("utf-8")


def _number(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


def _pct(value: Any) -> str:
    x = _number(value)
    return "–" if x is None else f"{x:.1f}%"


# ------------------------------------------------------------------------- summary band


def bar_chart(
    groups: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None], str]],
    ymax: float,
    label: str,
    fmt: str = "{:.0f}",
    width: int = 280,
    height: int = 150,
) -> str:
    """A small grouped bar chart as inline SVG. ``series``: (name, values, colour);
    a missing value (None/NaN) draws no bar and a dash."""
    left, bottom, top = 8, 20, 30 if len(series) > 1 else 16  # room for the legend, labels
    plot_h = height - bottom - top
    slot = (width - 2 * left) / len(groups)
    bar = min(34.0, (slot - 10) / len(series))
    ymax = ymax or 1.0
    parts = [
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(label)}">',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - left}" y2="{top + plot_h}" '
        'stroke="#cfd4dc"/>',
    ]
    for gi, group in enumerate(groups):
        x0 = left + gi * slot + (slot - bar * len(series)) / 2
        for si, (_, values, colour) in enumerate(series):
            value = _number(values[gi])
            x = x0 + si * bar
            cx = x + bar / 2
            if value is None:
                parts.append(
                    f'<text x="{cx:.1f}" y="{top + plot_h - 4}" text-anchor="middle">–</text>'
                )
                continue
            h = max(plot_h * value / ymax, 0.5 if value > 0 else 0)
            y = top + plot_h - h
            parts.append(
                f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{bar - 2:.1f}" height="{h:.1f}" '
                f'rx="2" fill="{colour}"><title>{escape(group)}: {fmt.format(value)}</title></rect>'
            )
            parts.append(
                f'<text x="{cx:.1f}" y="{y - 3:.1f}" text-anchor="middle">'
                f"{fmt.format(value)}</text>"
            )
        parts.append(
            f'<text x="{left + gi * slot + slot / 2:.1f}" y="{height - 5}" '
            f'text-anchor="middle">{escape(group)}</text>'
        )
    if len(series) > 1:
        x = left
        for name, _, colour in series:
            parts.append(f'<rect x="{x}" y="2" width="9" height="9" rx="2" fill="{colour}"/>')
            parts.append(f'<text x="{x + 13}" y="10">{escape(name)}</text>')
            x += 20 + 6.5 * len(name)
    parts.append("</svg>")
    return "".join(parts)


def _plots(metrics: Mapping[str, float]) -> str:
    counts = [metrics.get("num_unlabeled")] + [
        metrics.get(subgroup(SUBGROUP_COUNT, g)) for g in LABEL_GROUPS
    ]
    ymax = max((_number(c) or 0.0) for c in counts)
    dist = bar_chart(
        ["0", *LABEL_GROUPS],
        [("images", counts, "#7f95b8")],
        ymax,
        "images by number of valid labels",
    )
    acc = bar_chart(
        list(LABEL_GROUPS),
        [
            ("top1", [metrics.get(subgroup("top1", g)) for g in LABEL_GROUPS], "#b9c1cf"),
            (
                "vartopk_strict",
                [metrics.get(subgroup("vartopk_strict", g)) for g in LABEL_GROUPS],
                "#2f6fd1",
            ),
        ],
        100.0,
        "accuracy (%) by number of valid labels",
    )
    return (
        f'<figure class="plot">{dist}<figcaption>Images by number of valid labels'
        "</figcaption></figure>"
        f'<figure class="plot">{acc}<figcaption>Accuracy (%) by number of valid labels'
        "</figcaption></figure>"
    )


def _band(view: DatasetView) -> str:
    info = view.info
    count = info.get("num_images", view.metrics.get("num_images"))
    facts = [f"<b>{int(count):,}</b> images" if _number(count) is not None else None]
    facts.append(f"label set <b>{escape(str(info.get('labels', 'unknown')))}</b>")
    if info.get("class"):
        facts.append(escape(str(info["class"])))
    metric_tiles = "".join(
        f'<div class="metric"><span class="v">{_pct(view.metrics.get(k))}</span>'
        f'<span class="k">{k}</span></div>'
        for k in (SUMMARY_METRICS if view.has_labels else SINGLE_LABEL_METRICS)
    )
    note = (
        ""
        if view.has_labels
        else '<p class="note">No label set was present in this run: only single-label '
        "results (top-1 against the original label) can be shown. Evaluate with a label set "
        "(labels=real, multilabelfy, file) for the multi-label sections.</p>"
    )
    if view.photo_note:
        note += f'<p class="note">{escape(view.photo_note)}</p>'
    return (
        '<div class="band"><div class="band-head">'
        f"<h2>{escape(view.name)}</h2>"
        f'<div class="facts">{" · ".join(f for f in facts if f)}</div>{note}</div>'
        f'<div class="metrics">{metric_tiles}</div>'
        f"{_plots(view.metrics) if view.has_labels else ''}</div>"
    )


# ------------------------------------------------------------------------- image cards


def _img(tile: Tile, thumbs: Mapping[Path, str], alt: str) -> str:
    name = thumbs.get(tile.source) if tile.source is not None else None
    if name is None:
        why = "photo not found" if tile.source is None else "photo unreadable"
        return f'<div class="missing" title="{escape(tile.file)}">{why}<br>{escape(alt)}</div>'
    return f'<img src="thumbs/{name}" alt="{escape(alt)}" decoding="async">'


def _photo(sample: Sample, thumbs: Mapping[Path, str]) -> str:
    names = class_names()
    if len(sample.tiles) == 1:
        return f'<div class="photo">{_img(sample.tiles[0], thumbs, sample.file_name)}</div>'
    k = len(sample.valid) if sample.valid else len(sample.tiles)
    tiles = []
    for tile in sample.tiles:
        if tile.label is None:
            caption, cls = "label unknown", ' class="far"'
        else:
            caption = f"{names[tile.label]} · #{tile.rank}"
            cls = "" if tile.rank is not None and tile.rank <= k else ' class="far"'
        tiles.append(
            f'<figure class="tile">{_img(tile, thumbs, tile.file.rsplit("/", 1)[-1])}'
            f'<figcaption{cls} title="{escape(caption)}">{escape(caption)}</figcaption>'
            "</figure>"
        )
    return f'<div class="photo tiles">{"".join(tiles)}</div>'


def _exemplar(cls: int, photo: Path | None, examples: Mapping[Path, str]) -> str:
    """A small image of the class beside its top-5 row, or an empty slot (no image)."""
    name = examples.get(photo) if photo is not None else None
    if name is None:
        return '<span class="ex none"></span>'
    title = f"an image of {class_names()[cls]}: {photo.name}"
    return (
        f'<img class="ex" src="exemplars/{name}" alt="{escape(class_names()[cls])}" '
        f'title="{escape(title)}" decoding="async">'
    )


def _card(
    sample: Sample,
    thumbs: Mapping[Path, str],
    exemplars: Mapping[int, Path] | None = None,
    examples: Mapping[Path, str] | None = None,
) -> str:
    names, ids = class_names(), wnids()
    exemplars, examples = exemplars or {}, examples or {}
    slots = any(examples.get(p) for p in exemplars.values())  # a column of small images
    searchable = {sample.target, *(sample.valid or ()), *(c for c, _ in sample.top)}
    data_names = " ".join(sorted(f"{names[c].lower()} {ids[c]}" for c in searchable))
    nvalid = "" if sample.valid is None else str(len(sample.valid))
    rows = []
    for c, p in sample.top:
        ok = sample.is_valid(c)
        ex = _exemplar(c, exemplars.get(c), examples) if slots else ""
        rows.append(
            f'<li class="{"ok" if ok else "no"}" style="--p:{100 * p:.1f}%" '
            f'title="{escape(names[c])} ({ids[c]}): {"valid" if ok else "not valid"}">'
            f'<span class="m">{"✓" if ok else "✗"}</span>{ex}'
            f'<span class="n">{escape(names[c])}</span>'
            f'<span class="p">{100 * p:.1f}%</span></li>'
        )
    if sample.valid is None:
        valid = ""
    elif sample.valid:
        # the original label first, then the others as the model ranks them
        ordered = sorted(sample.valid_ranks, key=lambda cr: (cr[0] != sample.target, cr[1]))
        chips = "".join(
            f'<span class="chip">{escape(names[c])}{_yes(sample.votes.get(c))}</span>'
            for c, _ in ordered
        )
        valid = f'<div class="chips"><span class="k">valid</span>{chips}</div>'
    else:
        valid = (
            '<div class="chips"><span class="k">valid</span><span class="chip none">none</span>'
            "</div>"
        )
    ranks = ""
    if sample.valid and len(sample.valid) > 1:
        k = len(sample.valid)
        far = ' class="far"'
        shown = [
            f"<span{far if r > k else ''}>#{r} {escape(names[c])}</span>"
            for c, r in sample.valid_ranks
        ]
        ranks = f'<div class="ranks">valid labels ranked {", ".join(shown)}</div>'
    return (
        f'<article class="card" data-index="{sample.index}" data-names="{escape(data_names)}" '
        f'data-nvalid="{nvalid}" data-conf="{sample.confidence:.6f}">'
        f"{_photo(sample, thumbs)}"
        f'<div class="body"><div class="file" title="{escape(sample.path)}">'
        f"{escape(sample.file_name)}</div>"
        f'<div class="label">label <b>{escape(names[sample.target])}</b></div>'
        f'{valid}<ol class="top5">{"".join(rows)}</ol>{ranks}{_raters(sample)}</div></article>'
    )


def _yes(votes: Mapping[str, Any] | None) -> str:
    """A valid label's chip suffix: how many raters said yes (nothing where unrated)."""
    if not votes:
        return ""
    return f' <small class="votes">{votes["yes"]}/{votes["raters"]}</small>'


def raters_text(votes: Mapping[str, Any]) -> str:
    """``4 of 5 raters: yes`` (with the maybes and the score)."""
    text = f"{votes['yes']} of {votes['raters']} raters: yes"
    if votes["maybe"]:
        text += f", {votes['maybe']} maybe"
    return f"{text} (score {votes['score']:.2f})"


def _raters(sample: Sample, most: int = 4) -> str:
    """The raters' answers about the image's rated labels, most yes first: the labels
    the raters were asked about, kept or not."""
    if not sample.votes:
        return ""
    names = class_names()
    rated = sorted(sample.votes.items(), key=lambda cv: (-cv[1]["score"], cv[0]))[:most]
    items = "".join(
        f'<li class="{"ok" if sample.is_valid(c) else "no"}">'
        f"<b>{escape(names[c])}</b> {escape(raters_text(v))}</li>"
        for c, v in rated
    )
    more = len(sample.votes) - len(rated)
    tail = f'<li class="more">{more} more rated, fewer yes</li>' if more > 0 else ""
    return f'<ul class="raters" title="ReaL raters\' answers">{items}{tail}</ul>'


def _section(
    view: DatasetView,
    section: Section,
    seed: int,
    thumbs: Mapping[Path, str],
    examples: Mapping[Path, str],
) -> str:
    spec, shown = section.spec, len(section.rows)
    anchor = f"{view.name}-{spec.key}"
    if section.total > shown:
        sample = f" A random sample of {shown} (seed {seed}) of its {section.total:,} images."
    else:
        sample = ""
    cards = "".join(
        _card(view.samples[i], thumbs, view.exemplars.get(i), examples)
        for i in section.rows.tolist()
    )
    body = (
        f'<div class="grid">{cards}</div>'
        '<p class="none-match" hidden>No image of this section matches the filters.</p>'
        if shown
        else '<p class="empty">No image of this dataset is in this section.</p>'
    )
    return (
        f'<section class="gsec sec-{spec.key}" id="{escape(anchor)}" data-section="{spec.key}">'
        f"<h3>{escape(spec.title)}"
        f'<span class="sec-count"><span class="shown">{shown}</span> shown · '
        f"{section.total:,} in this section</span></h3>"
        f'<p class="blurb">{escape(spec.blurb)}{sample}</p>{body}</section>'
    )


def _dataset(
    view: DatasetView, seed: int, thumbs: Mapping[Path, str], examples: Mapping[Path, str]
) -> str:
    toc = "".join(
        f'<a href="#{escape(view.name)}-{s.spec.key}">{escape(s.spec.title)} '
        f"<span>{s.total:,}</span></a>"
        for s in view.sections
    )
    sections = "".join(_section(view, s, seed, thumbs, examples) for s in view.sections)
    return (
        f'<section class="dataset" id="ds-{escape(view.name)}" data-dataset="{escape(view.name)}">'
        f'{_band(view)}<nav class="toc">{toc}</nav>{sections}</section>'
    )


def _filters(any_labels: bool) -> str:
    options = "".join(f"<option>{g}</option>" for g in ("0", *LABEL_GROUPS))
    disabled = "" if any_labels else " disabled"
    return (
        '<nav class="filters" id="filters">'
        '<label>Class <input id="f-class" type="search" placeholder="label, valid or top-5 class"'
        ' autocomplete="off"></label>'
        f'<label>Valid labels <select id="f-nvalid"{disabled}><option value="any">any</option>'
        f"{options}</select></label>"
        '<label>Top-1 probability <input id="f-lo" type="range" min="0" max="100" step="1" '
        'value="0"><output id="f-lo-v">0%</output> to <input id="f-hi" type="range" min="0" '
        'max="100" step="1" value="100"><output id="f-hi-v">100%</output></label>'
        '<button id="f-reset" type="button">Reset</button>'
        '<span class="count" id="f-count" aria-live="polite"></span></nav>'
    )


def render_page(
    run_info: Mapping[str, Any],
    run_path: Path,
    views: list[DatasetView],
    thumbs: Mapping[Path, str],
    seed: int,
    per_section: int,
    examples: Mapping[Path, str] | None = None,
) -> str:
    """The page; ``thumbs`` and ``examples``: photo -> file name in thumbs/ and exemplars/."""
    examples = examples or {}
    model = run_info.get("model") or {}
    model_name = model.get("name") if isinstance(model, Mapping) else str(model)
    title = f"{model_name or 'unknown model'}"
    datasets = ", ".join(v.name for v in views)
    legend = "" if all(v.has_labels for v in views) else " (no label set: ✓ = original label)"
    if examples:
        legend += " · beside each class, another photo of that class"
    body = "".join(_dataset(v, seed, thumbs, examples) for v in views)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Gallery · {escape(title)} · {escape(run_path.name)}</title>"
        f"<style>{_asset('gallery.css')}</style></head><body>"
        f'<header class="top"><h1>{escape(title)} <small>on {escape(datasets)}</small></h1>'
        f'<p class="sub">Where single-label top-1 misjudges the model and where it really errs. '
        f"Run <code>{escape(str(run_path))}</code> · up to {per_section} images per section "
        f"(seed {seed}) · ✓ valid label, ✗ not valid{legend}</p></header>"
        f"{_filters(any(v.has_labels for v in views))}<main>{body}</main>"
        "<footer>Made by <code>python -m imagenet_multilabel gallery</code> from the run's saved "
        "predictions; probabilities are the softmax of the logits.</footer>"
        f"<script>{_asset('gallery.js')}</script></body></html>\n"
    )
