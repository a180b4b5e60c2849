"""``proposals.json``: per image its file name, original label and candidates, with the
runs, models and rule they came from, and a hash of the content (the review page keeps a
reviewer's progress under it; merged and reviewed files name it).

A label file's key for an image is its base name, as label sets join by base name
(:meth:`~imagenet_multilabel.data.labels.sets.LabelSet.join`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagenet_multilabel.core.errors import DataError
from imagenet_multilabel.core.files import read_json, write_json
from imagenet_multilabel.propose.candidates import Candidate, Ensemble, Rule
from imagenet_multilabel.reports.images.photos import is_composite_class

FORMAT = "imagenet-multilabel proposals 1"
FILE = "proposals.json"


def base_name(path: str) -> str:
    """The key of an image in label files (as ``LabelSet.join`` reduces paths)."""
    return str(path).replace("\\", "/").rsplit("/", 1)[-1]


def content_hash(dataset: str, images: Sequence[dict[str, Any]]) -> str:
    """SHA-256 (first 16 hex digits) of the images' files, original labels and candidate
    classes: the same proposals give the same hash, whatever the runs' folders."""
    core = [[im["file"], im["original"], [c["class"] for c in im["candidates"]]] for im in images]
    text = json.dumps([dataset, core], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _candidate(c: Candidate) -> dict[str, Any]:
    return {
        "class": c.cls,
        "support": c.support,
        "mean_prob": round(c.mean_prob, 5),
        "max_prob": round(c.max_prob, 5),
    }


def build_proposals(ens: Ensemble, rule: Rule, candidates: list[list[Candidate]]) -> dict:
    files = [base_name(p) for p in ens.paths.tolist()]
    if len(set(files)) != len(files):
        dupe = next(f for f in files if files.count(f) > 1)
        raise DataError(
            f"two images share the file name {dupe}: label files key images by file name, so "
            "give every image a unique name"
        )
    images = [
        {
            "file": f,
            "path": str(p),
            "original": int(t),
            "candidates": [_candidate(c) for c in cands],
        }
        for f, p, t, cands in zip(
            files, ens.paths.tolist(), ens.target.tolist(), candidates, strict=True
        )
    ]
    return {
        "format": FORMAT,
        "hash": content_hash(ens.dataset, images),
        "dataset": ens.dataset,
        "root": ens.root,
        "composite": is_composite_class(ens.info.get("class")),
        "runs": [str(r) for r in ens.runs],
        "models": list(ens.models),
        "rule": rule.as_dict(),
        "num_images": len(images),
        "mean_candidates": sum(len(im["candidates"]) for im in images) / max(1, len(images)),
        "images": images,
    }


def write_proposals(folder: Path, proposals: dict) -> Path:
    path = folder / FILE
    write_json(path, proposals)
    return path


@dataclass(frozen=True)
class Proposals:
    """A ``proposals.json`` read back."""

    path: Path
    data: dict

    @property
    def hash(self) -> str:
        return str(self.data["hash"])

    @property
    def images(self) -> list[dict[str, Any]]:
        return self.data["images"]

    @property
    def files(self) -> list[str]:
        return [im["file"] for im in self.images]


def read_proposals(path: str | Path) -> Proposals:
    """``proposals.json`` (or the folder holding it), checked."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / FILE
    if not path.is_file():
        raise DataError(
            f"{path} does not exist: pass proposals=<the folder python -m "
            "imagenet_multilabel propose wrote>"
        )
    data = read_json(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT or "images" not in data:
        raise DataError(
            f"{path} is not a proposals file: make one with python -m imagenet_multilabel propose"
        )
    if content_hash(data["dataset"], data["images"]) != data.get("hash"):
        raise DataError(f"{path} was changed after it was written (its hash differs): remake it")
    return Proposals(path, data)
