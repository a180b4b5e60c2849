"""Reading user label files: a JSON object or a CSV/TSV/whitespace table that maps file
names to one or more classes.

Accepted shapes (the same for dataset labels and for multi-label sets):

- JSON object ``{"a.jpg": 3, "b.jpg": "n01440764", "c.jpg": [3, "7"], "d.jpg": []}``;
- CSV/TSV or whitespace text, one image per row: ``file,label[,label...]`` or
  ``file,"label label ..."``; an optional header row (``file,label``) is skipped; lines
  starting with ``#`` are comments.

A JSON object may also hold ``"_origin"``: where the labels came from (written by
``python -m imagenet_multilabel propose``: ``{"kind": "reviewed", "reviewers": 2, ...}`` or
``{"kind": "model-made", ...}``); it is not an image (:func:`read_origin`).

A class is an index 0..999 (int or digit string; a whole float such as 3.0 or "3.0", as
spreadsheets and pandas write them, too) or an ImageNet-1k WordNet id. An Excel ``sep=;``
first line sets the separator.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from imagenet_multilabel.core.classes import NUM_CLASSES, wnid_to_index
from imagenet_multilabel.core.config import is_missing
from imagenet_multilabel.core.errors import DataError, UserError

LabelTable = dict[str, tuple[int, ...]]
ORIGIN_KEY = "_origin"  # a JSON label file's record of where its labels came from
ORIGIN_KINDS = ("reviewed", "model-made")
CLASS_TOKEN = re.compile(r"\d+(\.0*)?|n\d{8}")  # what a class cell looks like (header detection)
WHOLE_FLOAT = re.compile(r"\s*\d+\.0*\s*")  # "3.0": a class index written as a float


def parse_class(value: object, where: str) -> int:
    """One class given as an index (int or digit string) or a WordNet id -> its index."""
    if isinstance(value, bool):
        raise DataError(f"{where}: class {value!r} is not an index or a WordNet id")
    if (isinstance(value, float) and value.is_integer()) or (
        isinstance(value, str) and WHOLE_FLOAT.fullmatch(value)
    ):
        value = int(float(value))
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        index = int(value)
        if not 0 <= index < NUM_CLASSES:
            raise DataError(
                f"{where}: class index {index} is outside 0..{NUM_CLASSES - 1}; fix the labels file"
            )
        return index
    if isinstance(value, str):
        index = wnid_to_index().get(value.strip())
        if index is None:
            raise DataError(
                f"{where}: {value!r} is neither a class index nor an ImageNet-1k WordNet id; "
                "fix the labels file"
            )
        return index
    raise DataError(f"{where}: class {value!r} is not an index or a WordNet id")


def parse_classes(values: object, where: str) -> tuple[int, ...]:
    """A label entry (one class or a list of classes) -> sorted unique class indices."""
    if isinstance(values, (list, tuple)):
        if all(type(v) is int and 0 <= v < NUM_CLASSES for v in values):
            return tuple(sorted(set(values)))
        return tuple(sorted({parse_class(v, where) for v in values}))
    if isinstance(values, str) and len(values.split()) != 1:
        return tuple(sorted({parse_class(v, where) for v in values.split()}))
    return (parse_class(values, where),)


def _unique_keys(path: Path) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    """A JSON object hook that refuses a key given twice (json keeps the last silently)."""

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise DataError(f"labels file {path} lists {key!r} twice: keep one entry per image")
            out[key] = value
        return out

    return hook


def _require_file(path: Path, hint: str) -> None:
    if path.is_dir():
        raise DataError(f"labels file {path} is a folder, not a file: {hint}")
    if not path.is_file():
        raise DataError(f"labels file {path} does not exist: {hint}")


def read_json(path: str | Path, hint: str = "check labels.path") -> Any:
    """A JSON label file, read strictly: UTF-8 (a BOM allowed), no key given twice;
    ``hint``: what to do where it is missing (the option that names it)."""
    path = Path(path).expanduser()
    _require_file(path, hint)
    try:
        return json.loads(
            path.read_text(encoding="utf-8-sig"), object_pairs_hook=_unique_keys(path)
        )
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(
            f"labels file {path} is not valid JSON ({e}); fix or re-download it"
        ) from None


def _read_json(path: Path) -> LabelTable:
    data = read_json(path)
    if not isinstance(data, dict):
        raise DataError(
            f"labels file {path} holds a JSON {type(data).__name__}, not an object "
            '{"file name": class or [classes]}; convert it'
        )
    return {str(k): parse_classes(v, f"{path}: {k}") for k, v in data.items() if k != ORIGIN_KEY}


def origin_text(origin: dict[str, Any] | None) -> str:
    """``reviewed by 2 people`` / ``model-made`` / ``unknown`` (no record)."""
    if not origin:
        return "unknown"
    if origin.get("kind") == "reviewed":
        n = origin.get("reviewers")
        return f"reviewed by {n} {'person' if n == 1 else 'people'}"
    return str(origin.get("kind"))


def read_origin(path: str | Path) -> dict[str, Any] | None:
    """The ``"_origin"`` record of a JSON label file (None: a CSV, or a file without one).

    Raises:
        DataError: the record is not ``{"kind": "reviewed"|"model-made", ...}``.
    """
    path = Path(path).expanduser()
    if path.suffix.lower() != ".json":
        with path.open("rb") as f:
            if f.read(64).lstrip()[:1] != b"{":
                return None
    data = read_json(path)
    if not isinstance(data, dict) or ORIGIN_KEY not in data:
        return None
    origin = data[ORIGIN_KEY]
    if not isinstance(origin, dict) or origin.get("kind") not in ORIGIN_KINDS:
        raise DataError(
            f'labels file {path}: {ORIGIN_KEY} is not {{"kind": "reviewed" or '
            '"model-made", ...}: fix or remove it'
        )
    if origin["kind"] == "reviewed" and not (
        isinstance(origin.get("reviewers"), int) and origin["reviewers"] >= 1
    ):
        raise DataError(f"labels file {path}: a reviewed set records reviewers >= 1; fix it")
    return dict(origin)


def _is_header(row: list[str]) -> bool:
    """A first row like ``file,label``: no file extension, and no class in the second cell."""
    if len(row) < 2 or "." in row[0]:
        return False
    first = row[1].split()[0] if row[1].split() else ""
    return CLASS_TOKEN.fullmatch(first) is None


def _read_table(path: Path) -> LabelTable:
    try:
        text = path.read_text(encoding="utf-8-sig")  # spreadsheets often write a BOM
    except UnicodeDecodeError:
        raise DataError(
            f"labels file {path} is not UTF-8 text (JSON or CSV): save it as UTF-8 CSV"
        ) from None
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise DataError(f"labels file {path} is empty: give one row 'file,label' per image")
    sample = lines[0]
    if sample.strip().lower().startswith("sep=") and len(sample.strip()) == 5:
        # Excel's separator line; delimiters of one character only
        delimiter, lines = sample.strip()[4], lines[1:]
        if not lines:
            raise DataError(f"labels file {path} has no rows: give one row 'file,label' per image")
        rows = list(csv.reader(lines, delimiter=delimiter))
    elif "," in sample:
        rows = list(csv.reader(lines))
    elif ";" in sample:  # spreadsheets in locales with a decimal comma
        rows = list(csv.reader(lines, delimiter=";"))
    elif "\t" in sample:
        rows = list(csv.reader(lines, delimiter="\t"))
    else:
        rows = [ln.split() for ln in lines]
    if _is_header(rows[0]):
        rows = rows[1:]
    table: LabelTable = {}
    for number, row in enumerate(rows, start=1):
        cells = [c.strip() for c in row if c.strip()]
        if len(cells) < 1:
            continue
        name, labels = cells[0], cells[1:]
        where = f"{path} row {number} ({name})"
        if name in table:
            raise DataError(f"{where}: file name listed twice; keep one row per image")
        table[name] = tuple(sorted({parse_class(v, where) for c in labels for v in c.split()}))
    if not table:
        raise DataError(f"labels file {path} has a header but no rows: add 'file,label' rows")
    return table


def read_label_table(path: str | Path) -> LabelTable:
    """Read a JSON object or a CSV/TSV/text table of file name -> class indices.

    Raises:
        DataError: the file is missing, not JSON/CSV, or names an unknown class.
    """
    path = Path(path).expanduser()
    _require_file(path, "check the path")
    with path.open("rb") as f:
        head = f.read(64).lstrip()[:1]
    if path.suffix.lower() == ".json" or head in (b"{", b"["):
        return _read_json(path)
    if path.suffix.lower() not in (".csv", ".tsv", ".txt", ""):
        raise DataError(
            f"labels file {path} is neither JSON nor CSV (by its name {path.name}); "
            "give a .json object or a .csv table"
        )
    return _read_table(path)


def check_labels_option(labels: Mapping[str, Any] | None) -> None:
    """A ``labels`` option has its mandatory values (``???`` in conf/labels, e.g. the
    file of labels=file); a null ``path`` is the shipped copy (labels=real, multilabelfy)."""
    if labels is None:
        return
    missing = [str(k) for k in labels if is_missing(labels, k)]
    if missing:
        key = missing[0]
        value = "/path/to/labels" if key == "path" else "..."
        name = labels.get("name")
        raise UserError(f"labels={name} needs labels.{key}: pass labels.{key}={value}")
    points = labels.get("min_score")
    many = isinstance(points, Sequence) and not isinstance(points, str)
    for point in points if many else [points]:
        check_min_score(point)


def check_min_score(point: object) -> None:
    """An operating point of a scored label set (``labels.min_score``): None or a number
    in [0, 1]."""
    if point is None:
        return
    if isinstance(point, bool) or not isinstance(point, int | float) or not 0 <= point <= 1:
        raise UserError(
            f"labels.min_score={point!r} is not a score in [0, 1]: give e.g. "
            "labels.min_score=0.9 (real.json is 0.8), or a list labels.min_score=[0.5,0.8,0.95]"
        )
