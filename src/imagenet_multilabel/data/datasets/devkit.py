"""The ILSVRC2012 devkit, read for the labels of the flat val release
(``ImageNetValDataset`` of :mod:`.folders`): where it is, its ILSVRC2012_IDs, the WordNet id
of every val image by number.

``data/ILSVRC2012_validation_ground_truth.txt`` holds one 1-based ILSVRC2012_ID per image
(not the sorted-wnid order of the 1000 classes); ``data/map_clsloc.txt`` (later devkits)
or ``data/meta.mat`` (needs scipy) maps the IDs to wnids.
"""

from __future__ import annotations

from pathlib import Path

from imagenet_multilabel.core.errors import DataError

DEVKIT_DIR = "ILSVRC2012_devkit_t12"
DEVKIT_GROUND_TRUTH = "data/ILSVRC2012_validation_ground_truth.txt"


def devkit_dir(devkit: str | Path) -> Path:
    """The devkit folder: ``devkit`` itself or its ``ILSVRC2012_devkit_t12``."""
    path = Path(devkit).expanduser()
    if (path / DEVKIT_DIR).is_dir():
        path = path / DEVKIT_DIR
    if not (path / DEVKIT_GROUND_TRUTH).is_file():
        raise DataError(
            f"{path} is not the ILSVRC2012 devkit (no {DEVKIT_GROUND_TRUTH}): pass "
            f"data.devkit=/path/to/{DEVKIT_DIR}"
        )
    return path


def _ilsvrc_id_to_wnid(devkit: Path) -> dict[int, str]:
    """ILSVRC2012_ID (1-based, not the sorted-wnid order) -> wnid, from the devkit.

    Reads ``data/map_clsloc.txt`` (``wnid id name`` rows, as in later devkits) when present,
    else ``data/meta.mat`` (needs scipy).
    """
    table = devkit / "data" / "map_clsloc.txt"
    if table.is_file():
        ids = {}
        for line in table.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                ids[int(parts[1])] = parts[0]
        return ids
    meta = devkit / "data" / "meta.mat"
    if not meta.is_file():
        raise DataError(f"{devkit} has no data/meta.mat: re-extract the ILSVRC2012 devkit")
    try:
        from scipy.io import loadmat  # optional: only a devkit without data/map_clsloc.txt needs it
    except ImportError:
        raise DataError(
            f"reading {meta} needs scipy: pip install scipy, or pass "
            "data.labels_file=val_labels.txt (one 'file wnid' row per image)"
        ) from None
    synsets = loadmat(str(meta), squeeze_me=True)["synsets"]
    return {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets}


def devkit_wnids(devkit: Path) -> list[str]:
    """The wnid of val image n (1-based) at position n-1, from the devkit's ground truth."""
    id_to_wnid = _ilsvrc_id_to_wnid(devkit)
    lines = (devkit / DEVKIT_GROUND_TRUTH).read_text(encoding="utf-8").split()
    wnids = []
    for n, token in enumerate(lines, start=1):
        wnid = id_to_wnid.get(int(token)) if token.isdigit() else None
        if wnid is None:
            raise DataError(
                f"{devkit / DEVKIT_GROUND_TRUTH} line {n}: {token!r} is not an ILSVRC2012_ID "
                "of the devkit; re-extract the devkit"
            )
        wnids.append(wnid)
    return wnids
