"""Common image corruptions at five severities, after ImageNet-C (Hendrycks & Dietterich,
ICLR 2019): the 15 of the benchmark and two of its extras (speckle noise, Gaussian blur).

The severity parameters are those of ImageNet-C's generation script (``make_imagenet_c.py``);
the code is this package's own, so pixel values differ slightly from the released files
(e.g. blurs pad by mirroring and run as FFT convolutions; results are rounded, not
truncated, to uint8; the released JPEGs were re-encoded at quality 85, these are not).
Every function maps a uint8 ``H x W x 3`` array to a new one of the same shape; the random
ones draw only from the ``numpy.random.Generator`` they are given, so a corruption is a
pure function of (image, severity, generator state).

Ten need only numpy and Pillow. Seven (glass, motion and zoom blur, snow, frost, fog,
elastic transform) use SciPy and OpenCV and the frost pictures of the ``corrupt-tta``
package: the optional extra ``imagenet_c`` (:data:`NEEDS_EXTRA`). The ten are in
``corruptions_basic.py``, the seven in ``corruptions_extra.py``; this module lists them
(``CORRUPTIONS``, ``FAMILIES``, ``BENCHMARK``), checks a choice and applies it. corrupt-tta also
implements them, but draws from numpy's global random state (and scikit-image's unseeded
one for impulse noise) and departs from ImageNet-C in three of them (motion blur ignores
the Gaussian sigma, so severities 2-4 share one kernel; fog ignores the per-severity
fractal decay; elastic transform scales by 224 where ImageNet-C used 244): they are
written here instead, from ImageNet-C's definitions (docs/imagenet_c.md).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from imagenet_multilabel.core.errors import DataError
from imagenet_multilabel.data.datasets.corruptions_basic import (
    brightness,
    contrast,
    defocus_blur,
    gaussian_blur,
    gaussian_noise,
    impulse_noise,
    jpeg_compression,
    pixelate,
    shot_noise,
    speckle_noise,
)
from imagenet_multilabel.data.datasets.corruptions_extra import (
    NEEDS_EXTRA,  # noqa: F401  (listed here with the rest: benchmarks and tests read it)
    check_extra,
    elastic_transform,
    extra_module,
    fog,
    frost,
    glass_blur,
    motion_blur,
    snow,
    zoom_blur,
)

SEVERITIES = (1, 2, 3, 4, 5)
Corruption = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]

CORRUPTIONS: dict[str, Corruption] = {
    "gaussian_noise": gaussian_noise,
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "speckle_noise": speckle_noise,
    "gaussian_blur": gaussian_blur,
    "defocus_blur": defocus_blur,
    "brightness": brightness,
    "contrast": contrast,
    "jpeg_compression": jpeg_compression,
    "pixelate": pixelate,
    "glass_blur": glass_blur,
    "motion_blur": motion_blur,
    "zoom_blur": zoom_blur,
    "snow": snow,
    "frost": frost,
    "fog": fog,
    "elastic_transform": elastic_transform,
}
# ImageNet-C's 15 by family, in its order (its release has one archive per family)
FAMILIES = {
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise"),
    "blur": ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur"),
    "weather": ("snow", "frost", "fog", "brightness"),
    "digital": ("contrast", "elastic_transform", "pixelate", "jpeg_compression"),
}
BENCHMARK = tuple(c for names in FAMILIES.values() for c in names)


def check_corruption(name: str, severity: int, known: tuple[str, ...] | None = None) -> None:
    """Raise a one-line DataError for an unknown corruption or a severity outside 1..5."""
    known = tuple(CORRUPTIONS) if known is None else known
    if name not in known:
        raise DataError(
            f"unknown corruption {name!r}: use data.corruption= one of {', '.join(known)}"
        )
    if isinstance(severity, bool) or not isinstance(severity, int) or severity not in SEVERITIES:
        raise DataError(f"data.severity must be an integer 1..5, got {severity!r}")


IMPLEMENTATIONS = ("ours", "corrupt_tta")
_GLOBAL_RNG = threading.Lock()  # corrupt-tta draws from numpy's global random state


def check_implementation(implementation: str, name: str) -> None:
    """A one-line DataError for an unknown implementation, or one whose package is absent."""
    if implementation not in IMPLEMENTATIONS:
        raise DataError(
            f"data.implementation={implementation!r} is unknown: use {' or '.join(IMPLEMENTATIONS)}"
        )
    if implementation == "corrupt_tta":
        extra_module("corrupt_tta")
    else:
        check_extra(name)


def _corrupt_tta(image: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """corrupt-tta's version, for comparison: numpy's global random state seeded with
    ``seed`` for the call (under a lock; restored after). Its impulse noise draws from
    scikit-image's own unseeded generator, so it alone differs from run to run."""
    import corrupt_tta  # the optional extra imagenet_c, for implementation=corrupt_tta only

    with _GLOBAL_RNG:
        state = np.random.get_state()
        np.random.seed(seed % 2**32)
        try:
            out = corrupt_tta.corrupt(image, severity, corruption_name=name)
        finally:
            np.random.set_state(state)
    return np.clip(np.rint(np.asarray(out, dtype=np.float64)), 0, 255).astype(np.uint8)


def corrupt(
    image: np.ndarray, name: str, severity: int, seed: int = 0, implementation: str = "ours"
) -> np.ndarray:
    """``image`` (uint8 ``H x W x 3``) with corruption ``name`` at ``severity`` 1..5; the
    random draws come from ``numpy.random.default_rng(seed)``. ``implementation``:
    ``ours`` (this module) or ``corrupt_tta`` (the package's, see :func:`_corrupt_tta`)."""
    check_corruption(name, severity)
    check_implementation(implementation, name)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 H x W x 3 image, got {image.dtype} {image.shape}")
    if implementation == "corrupt_tta":
        out = _corrupt_tta(image, name, severity, seed)
    else:
        out = CORRUPTIONS[name](image, severity, np.random.default_rng(seed))
    assert out.shape == image.shape and out.dtype == np.uint8
    return out
