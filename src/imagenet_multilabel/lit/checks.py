"""Checks of the ``trainer.*`` settings Lightning's Trainer takes (accelerator, devices,
precision), whose own errors are tracebacks. Lightning (and torch) is imported only inside
these functions, which the config check calls last, and only where needed (seconds): not
for accelerator cpu or auto (but auto with float16), nor for the common precisions."""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import Any

from imagenet_multilabel.core.errors import UserError

# precision values every Lightning 2 takes (no import needed to accept them)
COMMON = frozenset(
    {"32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true", "32", "16", "64"}
)


def _precisions() -> set[str]:
    """The precision values Lightning accepts (as strings), or empty if it hides them."""
    try:  # Lightning imports torch: only once the rest of the config passed
        # Lightning imports torch: the trainer is checked last
        from lightning.fabric.connector import _PRECISION_INPUT
    except ImportError:  # pragma: no cover - another Lightning version
        return set()

    def values(tp: Any) -> list[Any]:
        args = typing.get_args(tp)
        if typing.get_origin(tp) is typing.Literal:
            return list(args)
        return [v for a in args for v in values(a)]

    return {str(v) for v in values(_PRECISION_INPUT)}


def _has_accelerator(name: str) -> bool:
    from lightning.pytorch.accelerators import AcceleratorRegistry  # torch: checked last

    name = "cuda" if name == "gpu" else name
    if name not in AcceleratorRegistry:
        return False
    return bool(AcceleratorRegistry[name]["accelerator"].is_available())


def check_trainer(trainer: Mapping[str, Any]) -> None:
    """``trainer.accelerator`` exists on this machine, ``devices`` and ``precision`` are
    values Lightning takes (its own errors of them are tracebacks)."""
    accelerator = str(trainer.get("accelerator", "auto"))
    if accelerator not in ("auto", "cpu"):  # cpu: always there, no import (seconds)
        # Lightning imports torch: the trainer is checked after every other setting
        from lightning.pytorch.accelerators import AcceleratorRegistry

        known = ["gpu", *AcceleratorRegistry.available_accelerators()]
        if accelerator not in known:
            raise UserError(
                f"trainer.accelerator={accelerator!r} is unknown: use auto, cpu, gpu or "
                f"{', '.join(k for k in known if k not in ('cpu', 'gpu'))}"
            )
        if not _has_accelerator(accelerator):
            raise UserError(
                f"trainer.accelerator={accelerator} but this machine has no usable "
                f"{accelerator.upper()}: use trainer=cpu (or trainer.accelerator=auto)"
            )
    devices = trainer.get("devices", "auto")
    if isinstance(devices, str) and devices.strip().lstrip("-").isdigit():
        devices = int(devices)
    if isinstance(devices, bool) or (
        not isinstance(devices, (int, str)) and not _is_int_list(devices)
    ):
        raise UserError(f"trainer.devices={devices!r} is not valid: give a number >= 1 or auto")
    if isinstance(devices, int) and (devices == 0 or devices < -1):
        raise UserError(
            f"trainer.devices={devices} is not valid: give the number of devices (>= 1), -1 "
            "(all) or auto"
        )
    if isinstance(devices, str) and devices != "auto" and not _is_int_list(devices.split(",")):
        raise UserError(f"trainer.devices={devices!r} is not valid: give a number >= 1 or auto")
    precision = trainer.get("precision")
    # Lightning's list costs its import (seconds): asked only for a value not of COMMON
    allowed = set() if precision is None or str(precision) in COMMON else _precisions()
    if allowed and str(precision) not in allowed:
        raise UserError(
            f"trainer.precision={precision!r} is unknown: use 32-true, 16-mixed, bf16-mixed, "
            "16-true, bf16-true or 64-true"
        )
    if str(precision) in ("16-mixed", "16") and _on_cpu(accelerator):
        # Lightning then runs bf16-mixed, while the run records 16-mixed
        raise UserError(
            f"trainer.precision={precision} (float16 autocast) needs a GPU: on CPU use "
            "bf16-mixed or 32-true"
        )


def _on_cpu(accelerator: str) -> bool:
    return accelerator == "cpu" or (
        accelerator == "auto" and not any(_has_accelerator(a) for a in ("cuda", "mps", "tpu"))
    )


def _is_int_list(values: Any) -> bool:
    try:
        items = list(values)
    except TypeError:
        return False
    return bool(items) and all(
        (isinstance(v, int) and not isinstance(v, bool) and v >= 0)
        or (isinstance(v, str) and v.strip().isdigit())
        for v in items
    )
