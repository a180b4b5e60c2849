"""Label sets: per image, the set of classes that are valid answers, joined to a dataset by
file base name.

Sources (each loader is a plain function usable as a Hydra ``_target_``):

- :func:`load_real`: ReaL (Beyer et al. 2020), ImageNet val;
- :func:`load_multilabelfy`: Multilabelfy (Anzaku et al.), ImageNetV2 MatchedFrequency;
- :func:`load_shankar`: Shankar et al. 2020 multi-label annotations (ImageNet val or V2);
- :func:`load_tsipras`: Tsipras et al. 2020 object annotations (6,761 ImageNet val images),
  with each image's main object;
- :func:`load_label_file`: a user JSON/CSV file (see :mod:`.files`).

:func:`resolve_labels` turns a ``labels`` option (``auto``, ``none`` or one of these) into
a dataset's valid-label matrix: the one path every task takes.

An empty label tuple means "no valid label" (the image is left out of multi-label metrics);
an image absent from the label set is an error unless ``allow_missing`` is set.
"""

from __future__ import annotations

import csv
import pickle
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
from hydra.utils import instantiate
from torch import Tensor

from imagenet_multilabel.core.classes import NUM_CLASSES
from imagenet_multilabel.core.config import ASSETS as PACKAGE_ASSETS
from imagenet_multilabel.core.errors import DataError
from imagenet_multilabel.data.labels.files import (
    check_labels_option,
    check_min_score,
    origin_text,
    parse_classes,
    read_json,
    read_label_table,
    read_origin,
)
from imagenet_multilabel.data.labels.ratings import RatedPairs, read_rated_pairs

ASSETS = PACKAGE_ASSETS / "labels"
MULTILABELFY_DEFAULT = ASSETS / "multilabelfy" / "imagenetv2_refined_labels.json"
TSIPRAS_DEFAULT = ASSETS / "tsipras" / "tsipras_classify.csv"
NO_MAIN = -1  # in a main-object vector: the image has no main object
REAL_NUM_IMAGES = 50_000
VAL_PREFIX = "ILSVRC2012_val_"


def label_counts(valid: Tensor) -> Tensor:
    """Number of valid labels of each image ``(N,)`` int64, as ``valid.sum(dim=1)`` (on
    CPU counted from the positions of the True entries: much faster on a bool matrix)."""
    n, c = valid.shape
    if valid.device.type != "cpu" or valid.dtype != torch.bool or c == 0:
        return valid.sum(dim=1)
    at = np.flatnonzero(valid.contiguous().numpy())
    return torch.from_numpy(np.bincount(at // c, minlength=n).astype(np.int64))


def val_file_name(number: int) -> str:
    """File name of ILSVRC2012 validation image ``number`` (1-based)."""
    return f"{VAL_PREFIX}{number:08d}.JPEG"


@dataclass(frozen=True)
class JoinedLabels:
    """A label set aligned with a dataset's images (row i = dataset item i).

    Attributes:
        valid: bool ``N x 1000`` multi-hot matrix of valid classes.
        labeled: bool ``N``: the image has at least one valid class.
        num_empty: images the label set lists with no valid class.
        num_missing: images the label set does not list (only with ``allow_missing``).
        main: int64 ``N``: each image's main object (:data:`NO_MAIN` where it has none),
            or None when the label set has no main objects.
    """

    valid: torch.Tensor
    labeled: torch.Tensor
    num_empty: int
    num_missing: int
    main: torch.Tensor | None = None

    @property
    def num_labeled(self) -> int:
        return int(self.labeled.sum())

    @property
    def counts(self) -> torch.Tensor:
        """Number of valid classes per image (``N``, int64)."""
        return label_counts(self.valid)


def _check_duplicates(file_names: Sequence[str]) -> None:
    counts = Counter(file_names)
    dupes = [n for n, c in counts.items() if c > 1]
    if dupes:
        raise DataError(
            f"{len(dupes)} file names occur more than once in the dataset (e.g. {dupes[0]}), so "
            "joining labels by file name is ambiguous: give every image a unique file name"
        )


@dataclass
class LabelSet:
    """Valid classes per image, keyed by file base name.

    Attributes:
        name: short name (``real``, ``multilabelfy``, ...), used in metric names.
        by_file: file base name -> sorted unique class indices (empty = no valid label).
        main: file base name -> the class of the image's main object, for label sets that
            name one (Tsipras et al.); scored as ``main_top1``.
        origin: a label file's record of where it came from (reviewed by N people,
            model-made; see :func:`~.files.read_origin`), None where it has none.
        ratings: the raters' answers and scores behind the labels, where they were
            released (ReaL: :class:`~.ratings.RatedPairs`), else None.
    """

    name: str
    by_file: dict[str, tuple[int, ...]]
    main: dict[str, int] | None = None
    origin: dict[str, Any] | None = None
    ratings: RatedPairs | None = None

    def __post_init__(self) -> None:
        for key, cls in (self.main or {}).items():
            if key not in self.by_file or not 0 <= cls < NUM_CLASSES:
                raise DataError(
                    f"label set {self.name!r}: main object {cls!r} of {key} is not a class "
                    "of a listed image; fix the label source"
                )
        for key, labels in self.by_file.items():
            if list(labels) != sorted(set(labels)) or (
                labels and not (labels[0] >= 0 and labels[-1] < NUM_CLASSES)
            ):
                raise DataError(
                    f"label set {self.name!r}: labels of {key} are not sorted unique indices in "
                    f"0..{NUM_CLASSES - 1} ({labels!r}); fix the label source"
                )

    def __len__(self) -> int:
        return len(self.by_file)

    def join(self, file_names: Sequence[str], allow_missing: bool = False) -> JoinedLabels:
        """Align with a dataset's images, given their file names (base names or paths).

        Label entries for files outside the dataset are ignored (normal for subsets).

        Raises:
            DataError: duplicate base names in the dataset, or images missing from the label
                set while ``allow_missing`` is false.
        """
        names = [str(f).rsplit("/", 1)[-1] for f in file_names]
        _check_duplicates(names)
        missing = [n for n in names if n not in self.by_file]
        if missing and len(missing) == len(names):  # nothing to score: the wrong label set
            raise DataError(
                f"label set {self.name!r} has none of this dataset's {len(names)} images (e.g. "
                f"{missing[0]}): use the label set made for this dataset, or labels=none for "
                "single-label metrics only"
            )
        if missing and not allow_missing:
            raise DataError(
                f"{len(missing)} of {len(names)} images are not in label set {self.name!r} "
                f"(e.g. {missing[0]}): use the label set made for this dataset, labels=none "
                "for single-label metrics only, or labels.allow_missing=true to score them as "
                "unlabeled"
            )
        rows: list[int] = []
        cols: list[int] = []
        num_empty = 0
        for row, name in enumerate(names):
            labels = self.by_file.get(name)
            if labels is None:
                continue
            if not labels:
                num_empty += 1
            rows.extend([row] * len(labels))
            cols.extend(labels)
        valid = torch.zeros(len(names), NUM_CLASSES, dtype=torch.bool)
        valid[torch.tensor(rows, dtype=torch.long), torch.tensor(cols, dtype=torch.long)] = True
        main = None
        if self.main is not None:
            main = torch.tensor([self.main.get(n, NO_MAIN) for n in names], dtype=torch.long)
        return JoinedLabels(valid, valid.any(dim=1), num_empty, len(missing), main)


# --- loaders -------------------------------------------------------------------------


def _timm_real_path() -> Path:

    return Path(timm.__file__).resolve().parent / "data" / "_info" / "imagenet_real_labels.json"


def load_real(
    path: str | Path | None = None,
    min_score: float | None = None,
    scores: str | Path | None = None,
) -> LabelSet:
    """ReaL labels for ILSVRC2012 val: a JSON list of 50,000 lists of class indices, entry i
    for ``ILSVRC2012_val_{i+1:08d}.JPEG``; ``path=None`` reads the copy shipped in timm.

    ``min_score``: ReaL at another operating point: a rated image's labels are those whose
    raters' score (``scores``: a ``real_scores.npz``, None: the shipped copy) is at least
    ``min_score``; images that were not rated keep the file's labels. At
    :data:`~.ratings.REAL_OPERATING_POINT` this is the file itself. The raters' answers
    travel with the set (``ratings``) either way.
    """
    check_min_score(min_score)
    path = _timm_real_path() if path is None else Path(path).expanduser()
    data = read_json(path)
    if not isinstance(data, list) or len(data) != REAL_NUM_IMAGES:
        size = len(data) if isinstance(data, (list, dict)) else "no"
        raise DataError(
            f"{path} is not a ReaL label file: expected a JSON list of {REAL_NUM_IMAGES} entries, "
            f"found {size}; use real.json from google-research/reassessed-imagenet"
        )
    by_file = {}
    for i, entry in enumerate(data):
        name = val_file_name(i + 1)
        if not isinstance(entry, list):
            raise DataError(f"{path}: entry for {name} is not a list of class indices")
        by_file[name] = parse_classes(entry, f"{path}: {name}")
    ratings = read_rated_pairs(scores)
    if min_score is None:
        return LabelSet("real", by_file, ratings=ratings)
    by_file.update(ratings.labels_at(float(min_score)))
    return LabelSet(f"real@{float(min_score):g}", by_file, ratings=ratings)


def load_multilabelfy(path: str | Path | None = None) -> LabelSet:
    """Multilabelfy labels for ImageNetV2 MatchedFrequency: ``{"<sha1>.jpeg": ["<index>",
    ...]}``; ``path=None`` reads the copy vendored in ``assets/labels/multilabelfy``."""
    path = MULTILABELFY_DEFAULT if path is None else Path(path).expanduser()
    data = read_json(path)
    if not isinstance(data, dict):
        raise DataError(
            f"{path} is not a Multilabelfy label file: expected a JSON object "
            '{"<file>.jpeg": ["<class index>", ...]}'
        )
    by_file = {}
    for name, entry in data.items():
        if not isinstance(entry, list):
            raise DataError(f"{path}: entry for {name} is not a list of class indices")
        by_file[str(name)] = parse_classes(entry, f"{path}: {name}")
    return LabelSet("multilabelfy", by_file)


def load_label_file(path: str | Path | None, name: str = "file") -> LabelSet:
    """A user label file: JSON object or CSV, file name -> one or more class indices or
    WordNet ids (format in :mod:`imagenet_multilabel.data.labels.files`). Keys that are paths
    are reduced to base names, which must then be unique."""
    if path is None or str(path) in ("", "???"):
        raise DataError("no label file given: pass labels.path=/path/to/labels.json")
    table = read_label_table(path)
    by_file: dict[str, tuple[int, ...]] = {}
    for key, labels in table.items():
        base = key.replace("\\", "/").rsplit("/", 1)[-1]
        if base in by_file:
            raise DataError(
                f"{path}: two entries share the file name {base}; label sets join by base "
                "name, so keep file names unique"
            )
        by_file[base] = labels
    return LabelSet(name, by_file, origin=read_origin(path))


def load_tsipras(path: str | Path | None = None) -> LabelSet:
    """Tsipras et al. 2020 ("From ImageNet to Image Classification"), CLASSIFY task: 6,761
    ILSVRC2012 val images, one label per distinct object (its most chosen class) and the
    annotators' main object. ``path=None`` reads the copy vendored in
    ``assets/labels/tsipras``, a CSV ``file,main,objects`` made from the authors' pickle by
    ``scripts/build_tsipras_labels.py`` (the pickle itself is never read here)."""

    path = TSIPRAS_DEFAULT if path is None else Path(path).expanduser()
    hint = "use assets/labels/tsipras/tsipras_classify.csv (labels.path=null)"
    if not path.is_file():
        raise DataError(f"Tsipras label file {path} does not exist: {hint}")
    with path.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    if not rows or [c.strip() for c in rows[0]] != ["file", "main", "objects"]:
        raise DataError(f"{path} is not a Tsipras label file (header file,main,objects): {hint}")
    by_file: dict[str, tuple[int, ...]] = {}
    main: dict[str, int] = {}
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != 3 or row[0] in by_file:
            raise DataError(f"{path} line {number}: not one 'file,main,objects' row per image")
        where = f"{path}: {row[0]}"
        by_file[row[0]] = parse_classes(row[2].split(), where)
        main[row[0]] = parse_classes(row[1], where)[0]
    return LabelSet("tsipras", by_file, main=main)


# --- Shankar et al. 2020 ---------------------------------------------------------------

_SAFE_GLOBALS = {
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "dict"),
    ("builtins", "list"),
    ("builtins", "tuple"),
    ("builtins", "int"),
    ("builtins", "float"),
    ("builtins", "str"),
    ("builtins", "bytes"),
    ("builtins", "bool"),
    ("collections", "defaultdict"),
    ("collections", "OrderedDict"),
    ("collections", "Counter"),
    ("datetime", "datetime"),
    ("datetime", "date"),
    ("datetime", "timedelta"),
    ("datetime", "timezone"),
}


class _SafeUnpickler(pickle.Unpickler):
    """Loads plain data only: refuses any class outside a small allow-list."""

    def find_class(self, module: str, name: str) -> Any:
        root = module.split(".")[0]
        if (module, name) in _SAFE_GLOBALS or (
            root == "numpy" and name in ("_reconstruct", "ndarray", "dtype", "scalar")
        ):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _read_shankar(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(f"Shankar label file {path} does not exist: check labels.path")
    if path.suffix.lower() == ".json":
        data = read_json(path)
    else:
        try:
            with path.open("rb") as f:
                data = _SafeUnpickler(f).load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
            raise DataError(
                f"{path} is not a usable human_accuracy pickle ({e}); re-download it"
            ) from None
    if not isinstance(data, dict) or not ({"image_labels", "initial_annots"} & set(data)):
        raise DataError(
            f"{path} is not Shankar et al.'s human accuracy data: no 'image_labels' or "
            "'initial_annots' table; use human_accuracy.pickle or human_accuracy_v3.0.0.json"
        )
    return data


def _problematic(data: dict[str, Any]) -> set[str]:
    ids = {str(k) for k in data.get("problematic_images", ()) or ()}
    for key, image in (data.get("image_map") or {}).items():
        if isinstance(image, dict) and image.get("problematic"):
            ids.add(str(image.get("id", key)))
    return ids


def load_shankar(path: str | Path | None, dataset: str = "imagenet") -> LabelSet:
    """Multi-labels of Shankar et al. 2020, "Evaluating Machine Accuracy on ImageNet".

    Reads ``human_accuracy.pickle`` (https://imagenetv2public.s3-us-west-2.amazonaws.com/
    human_accuracy.pickle, used by github.com/modestyachts/evaluating_machine_accuracy_on_imagenet)
    or its JSON successor ``human_accuracy_v3.0.0.json`` (storage.googleapis.com/
    brain-car-datasets/imagenet-mistakes/, used by TFDS ``imagenet2012_multilabel``). Both are a
    dict; the parts used here:

    - ``image_labels`` (pickle): image id -> ``{"correct": [wnid, ...], "wrong": [...],
      "unclear": [...]}``; the JSON file has the same inner dicts under ``initial_annots``
      (the pickle's ``initial_annots`` is the fallback when ``image_labels`` is absent);
    - ``image_map`` (pickle): image id -> ``{"id": ..., "problematic": bool, ...}``; the JSON
      file lists ``problematic_images`` as the keys of a dict.

    Image ids are ``ILSVRC2012_val_XXXXXXXX.JPEG`` for ImageNet val and the ImageNetV2
    candidate id (the 40-hex file stem of ImageNetV2 files, as in Multilabelfy) otherwise.
    The ``correct`` wnids are the valid labels; problematic images get an empty label set
    (the paper leaves them out). Other keys (annotators' answers ``annot_data``,
    ``all_candidates``, ``split_wnids``, ...) are not used.

    Args:
        path: the pickle or JSON file (it is not vendored: download it yourself).
        dataset: ``imagenet`` (val ids) or ``imagenetv2`` (V2 ids, keyed ``<id>.jpeg``).
    """
    if dataset not in ("imagenet", "imagenetv2"):
        raise DataError(f"labels.dataset={dataset!r} is unknown: use imagenet or imagenetv2")
    if path is None or str(path) in ("", "???"):
        raise DataError(
            "no Shankar label file given: pass labels.path=/path/to/human_accuracy.pickle"
        )
    path = Path(path).expanduser()
    data = _read_shankar(path)
    table = data.get("image_labels") or data.get("initial_annots")
    if not isinstance(table, dict):
        raise DataError(f"{path}: the image label table is not a dict; re-download the file")
    problematic = _problematic(data)
    by_file: dict[str, tuple[int, ...]] = {}
    for image_id, states in table.items():
        image_id = str(image_id)
        is_val = image_id.startswith(VAL_PREFIX)
        if is_val != (dataset == "imagenet"):
            continue
        key = image_id if "." in image_id else image_id + (".JPEG" if is_val else ".jpeg")
        if not isinstance(states, dict):
            raise DataError(f"{path}: labels of {image_id} are not a dict of label states")
        correct = list(states.get("correct") or [])
        by_file[key] = () if image_id in problematic else parse_classes(correct, f"{path}: {key}")
    if not by_file:
        raise DataError(f"{path} has no labels for dataset {dataset}: check labels.dataset")
    return LabelSet(f"shankar-{dataset}" if dataset != "imagenet" else "shankar", by_file)


# --- a label-set option of conf/labels, resolved for one dataset -----------------------

AUTO, NONE = "auto", "none"


@dataclass(frozen=True)
class ResolvedLabels:
    """The valid-label matrix of a dataset (None: no label set), what to record of it,
    for label sets that name one, each image's main object (int64, :data:`NO_MAIN` where
    none) and, where they were released, the raters' answers behind the set (ReaL)."""

    valid: torch.Tensor | None
    info: dict[str, Any]
    main: torch.Tensor | None = None
    ratings: RatedPairs | None = None


def load_label_set(spec: Mapping[str, Any]) -> tuple[LabelSet, bool]:
    """Instantiate a label-set option (a node of conf/labels with a ``_target_``); returns
    the set and its ``allow_missing`` flag."""

    check_labels_option(spec)  # e.g. labels=file without labels.path
    node = dict(spec)
    name = node.pop("name", None)
    allow_missing = node.pop("allow_missing", False)
    if not isinstance(allow_missing, bool):  # "maybe", "flase" would be true
        raise DataError(f"labels.allow_missing={allow_missing!r} is not valid: give true or false")
    if "_target_" not in node:
        raise DataError(f"label set {name!r} names no loader (_target_): see conf/labels/")
    label_set = instantiate(node, _convert_="all")
    if not isinstance(label_set, LabelSet):
        raise DataError(f"label set {name!r}: its loader returned no label set")
    return label_set, allow_missing


def resolve_labels(
    spec: Mapping[str, Any] | None,
    file_names: Sequence[str],
    intrinsic: torch.Tensor | None = None,
    default: Mapping[str, Any] | None = None,
    intrinsic_main: torch.Tensor | None = None,
    loaded: tuple[LabelSet, bool] | None = None,
) -> ResolvedLabels:
    """The one way a dataset gets its label set.

    ``spec``: the ``labels`` option (``name: auto`` when None). ``auto`` takes the
    dataset's own labels (``intrinsic``: composites, or the labels stored with a run's
    predictions, with their main objects ``intrinsic_main`` if stored), else its
    ``default`` option (composed by Hydra into the data config, e.g. ``real`` for ImageNet
    val), else none. ``none`` is none. Any other name is used, or is
    an error: a label set asked for by name is never silently dropped. ``loaded``: that
    option's :func:`load_label_set` already done (one load for many datasets or runs).
    """
    spec = dict(spec or {"name": AUTO})
    name = spec.get("name")
    if not name:
        raise DataError("the labels option has no name: add name: <option> to its YAML")
    if name == AUTO:
        if intrinsic is not None:
            return ResolvedLabels(intrinsic, {"labels": "intrinsic"}, intrinsic_main)
        if default is None:
            return ResolvedLabels(None, {"labels": NONE})
        return resolve_labels(default, file_names)
    if name == NONE:
        return ResolvedLabels(None, {"labels": NONE})
    label_set, allow_missing = loaded if loaded is not None else load_label_set(spec)
    joined = label_set.join(file_names, allow_missing=allow_missing)
    info: dict[str, Any] = {
        "labels": str(name),
        "num_empty_label_sets": joined.num_empty,
        "num_missing_from_labels": joined.num_missing,
    }
    if label_set.origin is not None:
        info["label_origin"] = origin_text(label_set.origin)
        info["label_origin_record"] = label_set.origin
    return ResolvedLabels(joined.valid, info, joined.main, label_set.ratings)
