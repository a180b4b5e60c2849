"""Run results on disk: written atomically (temp file + rename), read back with checks.

A run directory holds ``metrics.json`` (flat: name -> number), ``run.json`` (what is needed
to compare and reproduce the run), ``predictions.npz`` or ``predictions/<dataset>.npz``
(per-image logits in dataset order), the resolved ``.hydra/config.yaml`` and the log.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError

PREDICTION_KEYS = ("index", "path", "target", "logits")


def _umask_mode() -> int:
    """0o666 less the process umask: what a plain open() would create (mkstemp uses 0o600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _umask_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return _jsonable(value.item())
    return value


def write_json(path: str | Path, obj: Mapping[str, Any]) -> None:
    text = json.dumps(_jsonable(obj), indent=2, sort_keys=False) + "\n"
    atomic_write_bytes(path, text.encode())


def read_json(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path} does not exist: is this a finished run directory?") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path} is not valid JSON ({e.msg} at line {e.lineno})") from None


def write_predictions(
    path: str | Path,
    *,
    index: np.ndarray,
    files: list[str],
    target: np.ndarray,
    logits: np.ndarray,
    valid: np.ndarray | None = None,
    logits_dtype: str = "float32",
) -> None:
    """Per-image predictions in dataset order. ``valid`` (bool N x C) is stored packed."""
    arrays: dict[str, np.ndarray] = {
        "index": np.asarray(index, dtype=np.int64),
        "path": np.asarray(files, dtype=np.str_),
        "target": np.asarray(target, dtype=np.int64),
        "logits": np.asarray(logits, dtype=np.dtype(logits_dtype)),
    }
    if valid is not None:
        arrays["valid_packed"] = np.packbits(np.asarray(valid, dtype=bool), axis=1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".npz")
    os.fchmod(fd, _umask_mode())
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_predictions(path: str | Path) -> dict[str, np.ndarray]:
    """Read a predictions file and check that it is complete and consistent."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise DataError(f"predictions file {path} does not exist") from None
    except Exception as e:
        raise DataError(f"predictions file {path} is corrupt ({type(e).__name__})") from None
    missing = [k for k in PREDICTION_KEYS if k not in data]
    if missing:
        raise DataError(f"predictions file {path} lacks {', '.join(missing)}: rerun evaluation")
    n = len(data["index"])
    if data["logits"].ndim != 2 or any(len(data[k]) != n for k in PREDICTION_KEYS):
        raise DataError(f"predictions file {path} is incomplete: arrays differ in length")
    if not np.array_equal(data["index"], np.arange(n)):
        raise DataError(f"predictions file {path} is not a complete run in dataset order")
    if "valid_packed" in data:
        c = data["logits"].shape[1]
        data["valid"] = np.unpackbits(data.pop("valid_packed"), axis=1, count=c).astype(bool)
    return data
