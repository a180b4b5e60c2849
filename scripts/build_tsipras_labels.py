"""Rebuild the vendored Tsipras et al. label set from the authors' released pickle.

Reads ``annotations_classify_task.pkl`` of MadryLab/ImageNetMultiLabel (a pandas DataFrame
of the CLASSIFY task, 6,761 ILSVRC2012 val images indexed by file name) and writes
``src/imagenet_multilabel/assets/labels/tsipras/tsipras_classify.csv``: one row per image,
``file,main,objects`` with

- ``main``: ``main_top``, the class the annotators most often chose as the main object;
- ``objects``: one class per distinct object, the object's most chosen class, read from
  ``objects`` (one ``{class: (share, share)}`` candidate distribution per object) as the
  authors' notebook does: the class with the highest first share, ties to the lower class
  index; space-separated, sorted.

Run once by a maintainer (nothing at run time reads the pickle); it prints the SHA-256
lines of its PROVENANCE.md (``provenance.py``). The pickle is the known
release file: it is read with an unpickler that builds only numpy arrays, a Counter and
stand-ins for the three pandas classes of the frame, so neither pandas nor any other code
runs; anything else in it is refused.
"""

from __future__ import annotations

import argparse
import csv
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
from provenance import print_provenance  # scripts/provenance.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SRC = ROOT.parent / "shared/data/labels/tsipras-imagenet/annotations_classify_task.pkl"
DEFAULT_DST = ROOT / "src/imagenet_multilabel/assets/labels/tsipras/tsipras_classify.csv"
# beside it: each image's original ImageNet label as the frame records it (imagenet_label)
ORIGINALS = "imagenet_labels.csv"
NUM_IMAGES = 6761


class _State:
    """Stand-in for a pandas class: keeps the state pickle gives it."""

    state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _Frame(_State):
    pass


class _Manager(_State):
    pass


def _index(cls: Any, d: dict[str, Any] | None = None, *args: Any) -> np.ndarray:
    return np.asarray((d or {}).get("data"))


_ALLOWED = {
    ("pandas.core.frame", "DataFrame"): _Frame,
    ("pandas.core.internals.managers", "BlockManager"): _Manager,
    ("pandas.core.indexes.base", "Index"): _State,
    ("pandas.core.indexes.base", "_new_Index"): _index,
    ("builtins", "slice"): slice,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name in (
            "_reconstruct",
            "scalar",
        ):
            return getattr(np._core.multiarray, name)
        if (module, name) == ("collections", "Counter"):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_classify_frame(path: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    """The index (file names) and the columns (name -> array of the rows) of the frame."""
    frame = _Unpickler(io.BytesIO(path.read_bytes())).load()
    if not isinstance(frame, _Frame) or not isinstance(frame.state.get("_data"), _Manager):
        raise SystemExit(f"{path} is not the released CLASSIFY-task frame")
    # BlockManager state: (axes, block values, block items, {"0.14.1": {axes, blocks}})
    layout = frame.state["_data"].state[3]["0.14.1"]
    columns, index = (list(a) for a in layout["axes"])
    out: dict[str, np.ndarray] = {}
    for block in layout["blocks"]:
        locs = block["mgr_locs"]
        if isinstance(locs, slice):
            locs = range(*locs.indices(len(columns)))
        for row, loc in enumerate(locs):
            out[str(columns[loc])] = block["values"][row]
    return [str(i) for i in index], out


def object_label(candidates: dict[Any, tuple[float, float]]) -> int:
    """An object's class: the candidate with the highest first share, ties to the lower
    index (the notebook's ``sorted((-v[0], k) for k, v in o.items())[0][1]``)."""
    return int(min((-float(v[0]), int(k)) for k, v in candidates.items())[1])


def tsipras_rows(path: Path) -> list[tuple[str, int, list[int]]]:
    """``(file, main_top, sorted object classes)`` per annotated image, in file order."""
    files, cols = read_classify_frame(path)
    rows = []
    for i, name in enumerate(files):
        objects = sorted({object_label(o) for o in cols["objects"][i]})
        if len(objects) != int(cols["num_objects"][i]):
            raise SystemExit(f"{name}: {len(objects)} distinct object classes, num_objects differs")
        rows.append((name, int(cols["main_top"][i]), objects))
    return sorted(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--src", type=Path, default=DEFAULT_SRC)
    parser.add_argument("--dst", type=Path, default=DEFAULT_DST)
    args = parser.parse_args()
    rows = tsipras_rows(args.src)
    if len(rows) != NUM_IMAGES:
        raise SystemExit(f"expected {NUM_IMAGES} images in {args.src}, found {len(rows)}")
    args.dst.parent.mkdir(parents=True, exist_ok=True)
    with args.dst.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["file", "main", "objects"])
        for name, main_top, objects in rows:
            writer.writerow([name, main_top, " ".join(map(str, objects))])
    print(f"wrote {len(rows)} images to {args.dst}")
    files, cols = read_classify_frame(args.src)
    originals = sorted(zip(files, (int(c) for c in cols["imagenet_label"]), strict=True))
    with (args.dst.parent / ORIGINALS).open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["file", "label"])
        writer.writerows(originals)
    print(f"wrote their original labels to {args.dst.parent / ORIGINALS}")
    print_provenance([args.src], [args.dst, args.dst.parent / ORIGINALS])


if __name__ == "__main__":
    main()
