"""Checks of one config value, shared by every concept's checks (``data/checks.py``,
``training/checks.py``, ...), and of the runtime block (conf/runtime/default.yaml: loader,
threads, seed, switches, predictions' dtype). Each failure is one
:class:`~imagenet_multilabel.core.errors.UserError` line that names the setting as the
config spells it. Imports no torch: the config is checked before it is imported."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from imagenet_multilabel.core.errors import UserError

LOGITS_DTYPES = ("float32", "float16")
# on/off settings of conf/runtime/default.yaml: a typo ("yes", "maybe") would be truthy
SWITCHES = ("channels_last", "normalize_on_device", "compile", "keep_freed_memory", "pin_memory")


def value_at(cfg: Any, key: str) -> Any:
    """The value at dotted ``key`` (None where a part is missing)."""
    node = cfg
    for part in key.split("."):
        if node is None or not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def int_at_least(
    cfg: Mapping[str, Any], key: str, low: int, what: str, allow_none: bool = False
) -> None:
    value = cfg.get(key)
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UserError(f"{key}={value!r} is not valid: {what}")


def whole(cfg: Any, key: str, low: int, allow_none: bool = False, what: str = "") -> None:
    """``key`` is a whole number >= ``low`` (2.5, 'abc' and true are refused)."""
    value = value_at(cfg, key)
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        hint = what or (f"give a whole number >= {low}" + (" or null" if allow_none else ""))
        kind = "negative" if isinstance(value, (int, float)) and value < 0 <= low else "not valid"
        raise UserError(f"{key}={value!r} is {kind}: {hint}")


def real(
    cfg: Any,
    key: str,
    low: float = 0.0,
    high: float | None = None,
    *,
    allow_none: bool = False,
    open_high: bool = False,
    open_low: bool = False,
) -> float | None:
    """``key`` is a finite number in [low, high] (bounds open where asked)."""
    value = value_at(cfg, key)
    if value is None and allow_none:
        return None
    lo = "(" if open_low else "["
    hi = ")" if open_high else "]"
    if high is None:
        span = f"{'>' if open_low else '>='} {low:g}"
    else:
        span = f"in {lo}{low:g}, {high:g}{hi}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        none = " or null" if allow_none else ""
        raise UserError(f"{key}={value!r} is not valid: give a finite number {span}{none}")
    bad = value < low or (open_low and value == low)
    bad |= high is not None and (value > high or (open_high and value == high))
    if bad:
        kind = "negative" if value < 0 <= low else "out of range"
        raise UserError(f"{key}={value!r} is {kind}: give a number {span}")
    return float(value)


def choice(cfg: Any, key: str, choices: tuple[str, ...], allow_none: bool = False) -> None:
    value = value_at(cfg, key)
    if value is None and allow_none:
        return
    if value not in choices:
        raise UserError(f"{key}={value!r} is unknown: use one of {', '.join(choices)}")


def plain(value: Any) -> Any:
    return OmegaConf.to_container(value) if isinstance(value, (DictConfig, ListConfig)) else value


def check_runtime_settings(cfg: DictConfig) -> None:
    """The runtime block: loader and thread values, ``cpu_parallel``, the predictions'
    dtype, ``seed`` and the on/off switches."""
    int_at_least(
        cfg, "batch_size", 1, "give a whole number of images per batch, >= 1", allow_none=True
    )
    int_at_least(
        cfg, "num_workers", 0, "give 0 (decode in the main process) or more", allow_none=True
    )
    int_at_least(cfg, "cpu_threads", 1, "give null (auto) or a number >= 1", allow_none=True)
    int_at_least(cfg, "prefetch_factor", 1, "give null or a number >= 1", allow_none=True)
    if cfg.get("cpu_parallel", "batches") not in ("batches", "ops"):
        raise UserError(f"cpu_parallel must be 'batches' or 'ops', got {cfg.cpu_parallel!r}")
    dtype = str(cfg.get("predictions", {}).get("logits_dtype", "float32"))
    if dtype not in LOGITS_DTYPES:
        raise UserError(
            f"predictions.logits_dtype={dtype!r} is not supported: use float32 (exact "
            "re-scoring) or float16 (half the size)"
        )
    int_at_least(cfg, "seed", 0, "give a whole number in 0..4294967295", allow_none=True)
    if (cfg.get("seed") or 0) > 2**32 - 1:
        raise UserError(f"seed={cfg.seed} is not valid: give a whole number in 0..4294967295")
    for key in SWITCHES:
        value = cfg.get(key)
        if value is not None and not isinstance(value, bool):
            raise UserError(f"{key}={value!r} is not valid: give true or false")
