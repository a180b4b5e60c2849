"""The three commands of ``python -m imagenet_multilabel propose``: make proposals and
their review page from runs, merge reviewers' exports, write the model-made set."""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from imagenet_multilabel.core.classes import class_names
from imagenet_multilabel.core.errors import UserError
from imagenet_multilabel.core.files import atomic_write_bytes, replace_dir
from imagenet_multilabel.propose.candidates import Ensemble, Rule, image_candidates, load_ensemble
from imagenet_multilabel.propose.labelsets import (
    Merge,
    auto_labels,
    merge_reviews,
    merged_origin,
    read_review,
    write_label_file,
)
from imagenet_multilabel.propose.proposals import (
    FILE,
    build_proposals,
    read_proposals,
    write_proposals,
)
from imagenet_multilabel.propose.review_page import (
    EXEMPLARS,
    PAGE,
    PHOTOS,
    Proposals,
    read_photo_names,
    render_review_page,
    tile_files,
    write_photos,
)
from imagenet_multilabel.reports.images.exemplars import (
    ExemplarPool,
    pick_exemplars,
    write_exemplars,
)
from imagenet_multilabel.reports.images.photos import ImageLocator, labeled_tiles

log = logging.getLogger(__name__)


def _exemplars(
    proposals: Proposals,
    ens: Ensemble,
    image_root: Path | None,
    folder: str | None,
    out: Path,
) -> dict[str, dict[int, str]]:
    """Per image, a small photo of each candidate class where one exists (never one of the
    image's own photos): from ``folder`` (wnid-named photos, e.g. the ImageNet sample) or
    else from the dataset's own images under their original labels (a composite's tiles
    under theirs, where known)."""
    data = proposals.data
    composite = data.get("composite", False)
    locator = ImageLocator(data.get("root"), image_root)
    if folder:
        pool = ExemplarPool.from_folder(folder, setting="exemplars")
    else:
        pool = ExemplarPool()
        paths = [im["path"] for im in proposals.images]
        targets = [im["original"] for im in proposals.images]
        if composite:
            known = labeled_tiles({"path": ens.paths, "target": ens.target, "valid": ens.valid})
            pool.add(list(known), list(known.values()), locator.find)
        else:
            pool.add(paths, targets, locator.find)
    chosen = {}
    for im in proposals.images:
        own = [p for p in (locator.find(t) for t in tile_files(im, composite)) if p is not None]
        chosen[im["file"]] = pick_exemplars(pool, [c["class"] for c in im["candidates"]], own)
    names = write_exemplars({p for c in chosen.values() for p in c.values()}, out)
    return {f: {c: names[p] for c, p in picks.items() if p in names} for f, picks in chosen.items()}


def propose(
    runs: list[str],
    out: str | None = None,
    dataset: str | None = None,
    image_root: str | None = None,
    exemplars: str | None = None,
    **rule: Any,
) -> Path:
    """Proposals from the runs, written with the review page into ``out`` (default
    ``outputs/propose/<dataset>``). A folder holding other proposals is left alone."""
    rule_obj = Rule(**rule)
    ens = load_ensemble(runs, dataset)
    proposals = build_proposals(ens, rule_obj, image_candidates(ens, rule_obj))
    folder = Path(out).expanduser() if out else Path("outputs") / "propose" / ens.dataset
    if folder.exists():
        if not folder.is_dir():
            raise UserError(f"out={folder} is a file: choose a folder")
        if (folder / FILE).is_file():
            old = read_proposals(folder / FILE)
            if old.hash != proposals["hash"]:
                raise UserError(
                    f"{folder} holds other proposals ({old.hash}; these are "
                    f"{proposals['hash']}): choose another out= (nothing is overwritten)"
                )
        elif any(folder.iterdir()):
            raise UserError(f"{folder} is not empty: choose another out= for the proposals")
    root = Path(image_root).expanduser() if image_root else None
    folder.parent.mkdir(parents=True, exist_ok=True)
    built = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.new."))
    try:
        path = write_proposals(built, proposals)
        read = read_proposals(path)
        photos = write_photos(read, built / PHOTOS, root)
        examples = _exemplars(read, ens, root, exemplars, built / EXEMPLARS)
        page = render_review_page(read, photos, examples)
        atomic_write_bytes(built / PAGE, page.encode("utf-8"))
        built.chmod(0o755)
        replace_dir(built, folder)  # an earlier page of the same proposals: made again
    except BaseException:
        shutil.rmtree(built, ignore_errors=True)
        raise
    missing = len({t for im in read.images for t in tile_files(im, read.data["composite"])})
    missing -= len(photos)
    print(
        f"proposals: {len(read.images)} images of {ens.dataset} from {len(ens.models)} runs, "
        f"{proposals['mean_candidates']:.2f} candidates per image (rule {rule_obj.as_dict()})"
    )
    if missing:
        print(f"warning: {missing} photos not found: give image_root=<folder of the photos>")
    print(f"review page: {folder / PAGE}")
    return folder


# ------------------------------------------------------------------------- merge


def _names(classes: tuple[int, ...]) -> str:
    names = class_names()
    return ", ".join(f"{names[c]} ({c})" for c in classes) or "no label fits"


def _fmt(x: float) -> str:
    return "-" if x != x or math.isinf(x) else f"{x:.3f}"


def reviewer_names(reviews: list) -> list[str]:
    """Each export's file name, with its folder where two share a name (browsers save
    every export of a page under the same name)."""
    names = [r.path.name for r in reviews]
    if len(set(names)) == len(names):
        return names
    return [f"{r.path.parent.name}/{r.path.name}" for r in reviews]


def agreement_markdown(merge: Merge, reviews: list, k: int) -> str:
    names = reviewer_names(reviews)
    lines = [
        f"# Agreement of {len(reviews)} reviewers",
        "",
        f"- reviewers: {', '.join(names)}",
        f"- images every reviewer reviewed: {len(merge.images)}; identical sets: "
        f"{sum(i.identical for i in merge.images)} ({100 * merge.identical_share:.1f}%)",
        f"- Cohen's kappa over {merge.decisions} (image, class) decisions: {_fmt(merge.kappa)}"
        + (" (mean over pairs of reviewers)" if len(reviews) > 2 else ""),
        f"- merged: a class kept where at least {k} reviewers kept it; {len(merge.labels)} "
        f"images labelled, {merge.left_out} left out (fewer than {k} reviews)",
        "",
        "## Disagreements",
        "",
        "| image | " + " | ".join(names) + " | merged |",
        "|---|" + "---|" * (len(reviews) + 1),
    ]
    for im in merge.images:
        if not im.identical:
            cells = [im.file, *(_names(s) for s in im.sets), _names(im.merged)]
            lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def markdown_html(md: str) -> str:
    """The Markdown :func:`agreement_markdown` writes (headings, a list, a table) as HTML,
    every text escaped."""
    out: list[str] = []
    block = ""  # the open list or table

    def close() -> None:
        nonlocal block
        if block:
            out.append(f"</{block}>")
        block = ""

    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if all(set(c) <= set("-:") and c for c in cells):
                continue  # the header's rule
            tag = "td" if block == "table" else "th"
            if block != "table":
                close()
                out.append("<table>")
                block = "table"
            out.append("<tr>" + "".join(f"<{tag}>{escape(c)}</{tag}>" for c in cells) + "</tr>")
        elif line.startswith("- "):
            if block != "ul":
                close()
                out.append("<ul>")
                block = "ul"
            out.append(f"<li>{escape(line[2:])}</li>")
        else:
            close()
            level = len(line) - len(line.lstrip("#"))
            if level and line[level : level + 1] == " ":
                out.append(f"<h{level + 1}>{escape(line[level + 1 :])}</h{level + 1}>")
            elif line.strip():
                out.append(f"<p>{escape(line)}</p>")
    close()
    return "\n".join(out)


def agreement_page(merge: Merge, reviews: list, proposals: Proposals, k: int, folder: Path) -> str:
    """The disagreements as a gallery section: photos (the review page's) and each
    reviewer's set, beside the table of agreement."""
    composite = proposals.data.get("composite", False)
    photos = read_photo_names(proposals)
    # the review page's photos, relative to the page written into ``folder``
    where = Path(os.path.relpath(proposals.path.parent / PHOTOS, folder)).as_posix()
    by_file = {im["file"]: im for im in proposals.images}
    cards = []
    for im in merge.images:
        if im.identical:
            continue
        image = by_file[im.file]
        imgs = "".join(
            f'<img alt="{escape(t)}" src="{escape(quote(f"{where}/{photos[t]}"))}">'
            if t in photos
            else "[photo not found]"
            for t in tile_files(image, composite)
        )
        sets = "".join(
            f"<li><b>{escape(n)}</b>: {escape(_names(s))}</li>"
            for n, s in zip(reviewer_names(reviews), im.sets, strict=True)
        )
        cards.append(
            f'<figure class="card">{imgs}<figcaption><code>{escape(im.file)}</code>'
            f"<ul>{sets}<li><b>merged</b>: {escape(_names(im.merged))}</li></ul>"
            "</figcaption></figure>"
        )
    summary = markdown_html(agreement_markdown(merge, reviews, k))
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>Agreement of {len(reviews)} reviewers</title><style>
body{{font:14px/1.4 system-ui,sans-serif;margin:20px 28px;background:#f4f5f7;color:#1c2230}}
.summary{{background:#fff;padding:4px 16px 12px;border:1px solid #e3e6eb;border-radius:8px}}
.summary table{{border-collapse:collapse;font-size:13px}}
.summary th,.summary td{{border:1px solid #e3e6eb;padding:3px 8px;text-align:left}}
.grid{{display:flex;flex-wrap:wrap;gap:14px}}
.card{{margin:0;background:#fff;border:1px solid #e3e6eb;border-radius:8px;padding:8px;
width:{2 * 180 + 30}px}}
.card img{{height:150px;max-width:49%;object-fit:contain}}
.card ul{{margin:4px 0 0;padding-left:18px;font-size:12px}}</style></head><body>
<h1>Agreement: {len(merge.images)} images, {100 * merge.identical_share:.1f}% identical,
kappa {_fmt(merge.kappa)}</h1>
<div class="summary">{summary}</div>
<h2>Disagreements ({sum(not i.identical for i in merge.images)})</h2>
<div class="grid">{"".join(cards) or "<p>none</p>"}</div>
</body></html>
"""


def merge(
    files: list[str],
    proposals: str | None = None,
    min_agree: int | None = None,
    out: str | None = None,
) -> Path:
    if len(files) < 2:
        raise UserError("merge needs two or more reviewers' exports: propose merge a.json b.json")
    if not proposals:
        raise UserError("merge needs proposals=<the review page's folder or proposals.json>")
    props = read_proposals(proposals)
    reviews = [read_review(f, props) for f in files]
    if len({r.path.resolve() for r in reviews}) != len(reviews):
        raise UserError("an export is given twice: give each reviewer's export once")
    k = len(reviews) // 2 + 1 if min_agree is None else min_agree
    if isinstance(k, bool) or not isinstance(k, int):
        raise UserError(f"min_agree={k!r} must be a whole number")
    target = Path(out).expanduser() if out else props.path.parent / f"merged_{len(reviews)}.json"
    report = target.with_name(target.stem + "_agreement.html")
    for p in (target, report):
        if p.exists():
            raise UserError(f"{p} exists: choose another out= (nothing is overwritten)")
    result = merge_reviews(reviews, props, k)
    md = agreement_markdown(result, reviews, k)
    write_label_file(target, result.labels, merged_origin(reviews, props, result, k))
    atomic_write_bytes(
        report, agreement_page(result, reviews, props, k, report.parent).encode("utf-8")
    )
    print(md)
    print(f"merged labels: {target} ({len(result.labels)} images)")
    print(f"agreement page: {report}")
    return target


def auto(proposals: str | None = None, min_prob: float = 0.5, out: str | None = None) -> Path:
    if not proposals:
        raise UserError("auto needs proposals=<the review page's folder or proposals.json>")
    props = read_proposals(proposals)
    labels = auto_labels(props, min_prob)
    target = Path(out).expanduser() if out else props.path.parent / f"model_made_p{min_prob:g}.json"
    origin = {
        "kind": "model-made",
        "rule": f"candidates with mean probability >= {min_prob:g}",
        "proposals": props.hash,
        "dataset": props.data["dataset"],
        "models": props.data["models"],
    }
    write_label_file(target, labels, origin)
    sizes = [len(v) for v in labels.values()]
    print(
        f"model-made labels: {target} ({len(labels)} images, "
        f"{sum(sizes) / max(1, len(sizes)):.2f} classes per image; not reviewed)"
    )
    return target


COMMANDS: Mapping[str, Any] = {"propose": propose, "merge": merge, "auto": auto}
