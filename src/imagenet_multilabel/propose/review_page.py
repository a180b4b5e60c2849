"""The review page: one static HTML file (CSS, JavaScript and the proposals inline; it opens
from disk, with no server) and the photos beside it in ``photos/``.

A reviewer toggles each image's candidates (the original label on at the start) with the
mouse or the keys, the page keeps the progress in the browser's localStorage under the
proposals' hash, and the export button downloads the label file (file name -> class
indices; ``[]``: no label fits) that ``labels=file labels.path=<file>`` reads as it is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from html import escape
from importlib.resources import files
from pathlib import Path

from imagenet_multilabel.core.classes import class_names, wnids
from imagenet_multilabel.core.files import read_json, write_json
from imagenet_multilabel.propose.proposals import Proposals
from imagenet_multilabel.reports.images.photos import ImageLocator
from imagenet_multilabel.reports.images.thumbnails import write_thumbnails

PAGE = "review.html"
PHOTOS = "photos"
EXEMPLARS = "exemplars"
PHOTO_INDEX = "index.json"  # in photos/: stored path -> photo file
PHOTO_SIZE = 448  # longest side of a photo (a composite's tile) on the page


def _asset(name: str) -> str:
    return files("imagenet_multilabel").joinpath("assets", "propose", name).read_text("utf-8")


def tile_files(image: Mapping, composite: bool) -> list[str]:
    """The photos an image is made of (a composite's tiles, joined by ``+``)."""
    path = str(image["path"])
    return path.split("+") if composite else [path]


def write_photos(proposals: Proposals, folder: Path, image_root: Path | None) -> dict[str, str]:
    """Every photo of the proposals, fitted into PHOTO_SIZE, into ``folder``; returns the
    stored path -> file name (photos not found are left out, and shown as a placeholder)."""
    data = proposals.data
    locator = ImageLocator(data.get("root"), image_root)
    found: dict[str, Path] = {}
    for image in proposals.images:
        for f in tile_files(image, data.get("composite", False)):
            source = locator.find(f)
            if source is not None:
                found[f] = source
    thumbs = write_thumbnails(found.values(), folder, PHOTO_SIZE)
    names = {f: thumbs[s] for f, s in found.items() if s in thumbs}
    write_json(folder / PHOTO_INDEX, names)
    return names


def read_photo_names(proposals: Proposals) -> dict[str, str]:
    """The photos the review page holds: stored path -> file name in ``photos/``."""
    index = proposals.path.parent / PHOTOS / PHOTO_INDEX
    return read_json(index) if index.is_file() else {}


def page_data(
    proposals: Proposals,
    photos: Mapping[str, str],
    exemplars: Mapping[str, Mapping[int, str]],
) -> dict:
    """What the page's script reads: compact rows and the names of the classes used."""
    data = proposals.data
    composite = data.get("composite", False)
    names, ids = class_names(), wnids()
    used: set[int] = set()
    rows = []
    for image in proposals.images:
        cands = [
            [c["class"], c["support"], c["mean_prob"], c["max_prob"]] for c in image["candidates"]
        ]
        used.update(c[0] for c in cands)
        used.add(image["original"])
        rows.append(
            {
                "f": image["file"],
                "o": image["original"],
                "c": cands,
                "p": [photos.get(t) for t in tile_files(image, composite)],
                "e": {str(c): n for c, n in exemplars.get(image["file"], {}).items()},
            }
        )
    return {
        "hash": proposals.hash,
        "dataset": data["dataset"],
        "models": len(data["models"]),
        "rule": data["rule"],
        "names": {str(c): names[c] for c in sorted(used)},
        "wnids": {str(c): ids[c] for c in sorted(used)},
        "images": rows,
    }


def _exemplar_hint(data: Mapping) -> str:
    """A line where candidates have no example photo (a user's own folder often holds one
    photo per class, the image itself): how to add exemplars."""
    pairs = [(im["e"], c[0]) for im in data["images"] for c in im["c"]]
    missing = sum(str(c) not in shown for shown, c in pairs)
    if not missing:
        return ""
    return (
        f'<p class="hint" id="exemplar-hint">{missing} of {len(pairs)} candidates have no '
        "example photo here (their class names are shown large instead). To show one, run "
        "propose again with <code>exemplars=&lt;folder&gt;</code>: photos named "
        "<code>&lt;wnid&gt;_&lt;name&gt;.JPEG</code> or in wnid folders (e.g. a sample "
        "of ImageNet with a photo of every class)</p>"
    )


def render_review_page(
    proposals: Proposals,
    photos: Mapping[str, str],
    exemplars: Mapping[str, Mapping[int, str]],
) -> str:
    """The page; ``photos``: stored path -> file in photos/; ``exemplars``: per image file,
    class -> file in exemplars/."""
    data = page_data(proposals, photos, exemplars)
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    title = f"Review {data['dataset']}: {len(data['images'])} images"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{_asset("review.css")}</style></head>
<body>
<header>
  <h1>{escape(title)}</h1>
  <span id="progress" class="progress"></span>
  <span class="spacer"></span>
  <label class="reviewer">Reviewer <input id="reviewer" type="text" autocomplete="name"
    placeholder="your name" title="in the exported file's name"></label>
  <button id="export" type="button" title="download the label file (e)">Export labels</button>
  <label class="import">Import <input id="import" type="file" accept=".json,application/json">
  </label>
</header>
<nav class="filters">
  <label>Class <select id="f-class"><option value="">all</option></select></label>
  <label>Candidates <select id="f-count"><option value="">any number</option></select></label>
  <label>Reviewed <select id="f-reviewed"><option value="">all</option>
    <option value="no">not yet</option><option value="yes">reviewed</option></select></label>
  <span id="shown" class="shown"></span>
</nav>
<main>
  <section class="photo"><div id="photos" class="tiles"></div>
    <p id="file" class="file"></p>{_exemplar_hint(data)}</section>
  <section class="decide">
    <p id="state" class="state"></p>
    <ol id="candidates" class="candidates"></ol>
    <p><button id="none" type="button" class="none">0 &nbsp;No label fits</button></p>
    <p class="nav"><button id="prev" type="button">&larr; previous</button>
      <button id="next" type="button">next &rarr;</button></p>
    <p class="keys"><kbd>1</kbd>&ndash;<kbd>9</kbd> toggle a candidate &middot;
      <kbd>0</kbd> no label fits &middot; <kbd>Enter</kbd> / <kbd>&rarr;</kbd> keep and next
      &middot; <kbd>&larr;</kbd> previous &middot; <kbd>u</kbd> next not reviewed &middot;
      <kbd>e</kbd> export</p>
    <p class="about">{escape(str(len(proposals.data["models"])))} models;
      rule {escape(json.dumps(data["rule"]))}; proposals {escape(data["hash"])}</p>
  </section>
</main>
<script id="proposals" type="application/json">{payload}</script>
<script>{_asset("review.js")}</script>
</body></html>
"""
