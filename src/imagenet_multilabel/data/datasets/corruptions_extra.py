"""The seven corruptions of ImageNet-C that need the optional extra ``imagenet_c``
(SciPy, OpenCV and corrupt-tta's frost pictures): glass, motion and zoom blur, snow,
frost, fog and elastic transform, written from ImageNet-C's definitions (see
``corruptions.py``'s docstring for where and why they differ from corrupt-tta's). Each
maps a uint8 ``H x W x 3`` array to a new one, drawing only from the generator it is
given."""

from __future__ import annotations

import functools
import importlib
from importlib import resources
from types import ModuleType

import numpy as np
from PIL import Image

from imagenet_multilabel.core.errors import DataError
from imagenet_multilabel.data.datasets.corruptions_basic import to_float, to_uint8

# sigma of the Gaussian blurs, largest pixel shift, rounds of shuffling
_GLASS_BLUR = ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2))
_MOTION_BLUR = ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15))  # radius, sigma (ImageMagick)
_ZOOM_BLUR = ((1.11, 0.01), (1.16, 0.01), (1.21, 0.02), (1.26, 0.02), (1.31, 0.03))  # end, step
# snow: mean and std of the flake noise, its zoom, threshold, motion radius and sigma, and
# the weight of the image against its brightened copy
_SNOW = (
    (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
    (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
    (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
    (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
    (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
)
_FROST = ((1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75))  # image, frost weights
_FROST_PICTURES = 5  # ImageNet-C drew from the first five of its six frost pictures
_FOG = ((1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4))  # fog weight, fractal decay
# elastic: displacement scale, its smoothing sigma, affine jitter; ImageNet-C wrote 244
# where 224 was meant ("nothing is incorrect", its comment says): its values are kept
_ELASTIC = tuple(
    (244 * a, 244 * s, 244 * j)
    for a, s, j in (
        (2, 0.7, 0.1),
        (2, 0.08, 0.2),
        (0.05, 0.01, 0.02),
        (0.07, 0.01, 0.02),
        (0.12, 0.01, 0.02),
    )
)
EXTRA = "imagenet_c"  # the optional dependencies of the seven below


def extra_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError:
        raise DataError(
            f"this corruption needs {name.split('.')[0]}: pip install "
            f"'imagenet-multilabel[{EXTRA}]'"
        ) from None


def check_extra(name: str) -> None:
    """A one-line DataError, before any work, when corruption ``name`` needs the extra and
    it is not installed."""
    if name in NEEDS_EXTRA:
        for module in ("scipy.ndimage", "cv2", "corrupt_tta"):
            extra_module(module)


def _gaussian_filter(x: np.ndarray, sigma: float, **kwargs) -> np.ndarray:
    """Each channel blurred (scikit-image's ``gaussian``: edges repeated, 4 sigma)."""
    ndimage = extra_module("scipy.ndimage")
    sigmas = (sigma, sigma, 0) if x.ndim == 3 else sigma
    return ndimage.gaussian_filter(x, sigmas, mode=kwargs.pop("mode", "nearest"), **kwargs)


def glass_blur(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Blur, then swap each pixel with one at most ``delta`` away, scanning from the
    bottom-right corner up (each swap moves pixels the scan reaches later), ``rounds``
    times, then blur again."""
    sigma, delta, rounds = _GLASS_BLUR[severity - 1]
    x = (np.clip(_gaussian_filter(to_float(image), sigma), 0, 1) * 255).astype(np.uint8)
    h, w = x.shape[:2]
    flat = x.reshape(h * w, 3)
    packed = flat[:, 0].astype(np.int64) << 16 | flat[:, 1].astype(np.int64) << 8 | flat[:, 2]
    pixels = packed.tolist()  # swaps on a list: the sequential loop stays fast
    rows = np.arange(h - delta, delta, -1)
    cols = np.arange(w - delta, delta, -1)
    at = (rows[:, None] * w + cols[None, :]).ravel()  # scan order
    for _ in range(rounds):
        # per pixel (dx, dy), in [-delta, delta): ImageNet-C's draws, in scan order
        dx, dy = rng.integers(-delta, delta, size=(len(at), 2)).T
        for a, b in zip(at.tolist(), (at + dy * w + dx).tolist(), strict=True):
            pixels[a], pixels[b] = pixels[b], pixels[a]
    packed = np.asarray(pixels, dtype=np.int64)
    x = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=1)
    x = x.reshape(h, w, 3).astype(np.float64) / 255.0
    return to_uint8(np.clip(_gaussian_filter(x, sigma), 0, 1))


def _motion(x: np.ndarray, radius: int, sigma: float, angle: float) -> np.ndarray:
    """ImageMagick's motion blur, which made ImageNet-C: each pixel becomes the mean of
    the ``2 radius + 1`` pixels from it along ``angle`` (degrees) in one direction,
    weighted by a Gaussian of ``sigma`` in the distance; edge pixels repeat."""
    width = 2 * radius + 1
    weights = np.exp(-0.5 * (np.arange(width) / sigma) ** 2)
    weights /= weights.sum()
    t = np.deg2rad(angle)
    dx = np.ceil(np.arange(width) * np.cos(t) - 0.5).astype(int)
    dy = np.ceil(np.arange(width) * np.sin(t) - 0.5).astype(int)
    h, w = x.shape[:2]
    pad = ((width, width), (width, width)) + ((0, 0),) * (x.ndim - 2)
    padded = np.pad(x.astype(np.float64), pad, mode="edge")
    out = np.zeros(x.shape, dtype=np.float64)
    for k, (ox, oy) in enumerate(zip(dx, dy, strict=True)):
        out += weights[k] * padded[width + oy : width + oy + h, width + ox : width + ox + w]
    return out


def motion_blur(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    radius, sigma = _MOTION_BLUR[severity - 1]
    return to_uint8(_motion(image, radius, sigma, rng.uniform(-45, 45)) / 255.0)


def _clipped_zoom(x: np.ndarray, factor: float) -> np.ndarray:
    """The centre of ``x`` magnified by ``factor`` (bilinear), cut to ``x``'s size."""
    ndimage = extra_module("scipy.ndimage")
    h, w = x.shape[:2]
    ch, cw = int(np.ceil(h / factor)), int(np.ceil(w / factor))
    top, left = (h - ch) // 2, (w - cw) // 2
    zoom = (factor, factor) + (1,) * (x.ndim - 2)
    out = ndimage.zoom(x[top : top + ch, left : left + cw], zoom, order=1)
    t, lft = (out.shape[0] - h) // 2, (out.shape[1] - w) // 2
    return out[t : t + h, lft : lft + w]


def zoom_blur(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """The mean of the image and its zooms by 1 + step, 1 + 2 step, ... up to ``end``."""
    end, step = _ZOOM_BLUR[severity - 1]
    x = to_float(image).astype(np.float32)
    factors = np.arange(1, end, step)
    out = x.copy()
    for factor in factors:
        out += _clipped_zoom(x, float(factor))
    return to_uint8(out / (len(factors) + 1))


def snow(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Flakes (thresholded, zoomed Gaussian noise, motion-blurred at an angle in
    [-135, -45] degrees, added twice: as drawn and turned 180 degrees) over the image
    blended with a brightened grey copy."""
    mean, std, zoom, threshold, radius, sigma, keep = _SNOW[severity - 1]
    x = to_float(image).astype(np.float32)
    h, w = x.shape[:2]
    flakes = rng.normal(mean, std, size=(h, w)).astype(np.float32)
    flakes = _clipped_zoom(flakes, zoom)
    flakes[flakes < threshold] = 0
    flakes = (np.clip(flakes, 0, 1) * 255).astype(np.uint8)  # an 8-bit layer, as blurred
    flakes = np.clip(_motion(flakes, radius, sigma, rng.uniform(-135, -45)), 0, 255)
    flakes = np.rint(flakes)[:, :, None] / 255.0
    grey = (x @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[:, :, None]
    x = keep * x + (1 - keep) * np.maximum(x, grey * 1.5 + 0.5)
    return to_uint8(x + flakes + np.rot90(flakes, k=2))


@functools.cache
def _frost_picture(index: int) -> np.ndarray:
    """ImageNet-C's frost picture ``index`` (1..6) as uint8 RGB, from corrupt-tta."""

    extra_module("corrupt_tta")
    suffix = "png" if index <= 3 else "jpg"
    ref = resources.files("corrupt_tta").joinpath("assets", "frost", f"frost{index}.{suffix}")
    with resources.as_file(ref) as path, Image.open(path) as im:
        return np.asarray(im.convert("RGB")).copy()


def frost(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A random crop of one of the first five frost pictures, added with weights."""
    a, b = _FROST[severity - 1]
    picture = _frost_picture(int(rng.integers(_FROST_PICTURES)) + 1)
    h, w = image.shape[:2]
    ph, pw = picture.shape[:2]
    if ph <= h or pw <= w:  # images larger than the pictures: scale the picture up
        scale = max((h + 1) / ph, (w + 1) / pw)
        size = (int(np.ceil(pw * scale)), int(np.ceil(ph * scale)))
        picture = np.asarray(Image.fromarray(picture).resize(size, Image.Resampling.BILINEAR))
        ph, pw = picture.shape[:2]
    top, left = int(rng.integers(0, ph - h)), int(rng.integers(0, pw - w))
    crop = picture[top : top + h, left : left + w].astype(np.float64)
    return to_uint8(np.clip(a * image.astype(np.float64) + b * crop, 0, 255) / 255.0)


def _plasma_fractal(size: int, decay: float, rng: np.random.Generator) -> np.ndarray:
    """A ``size x size`` (a power of 2) diamond-square fractal in [0, 1]: each midpoint
    is the mean of its four neighbours (wrapping around) plus uniform noise whose range
    shrinks by ``decay`` at each halving of the step."""
    grid = np.zeros((size, size))
    step, wibble = size, 100.0

    def noisy(total: np.ndarray) -> np.ndarray:
        return total / 4 + wibble * rng.uniform(-wibble, wibble, total.shape)

    while step >= 2:
        half = step // 2
        corners = grid[0:size:step, 0:size:step]
        square = corners + np.roll(corners, -1, axis=0)
        square = square + np.roll(square, -1, axis=1)
        grid[half:size:step, half:size:step] = noisy(square)
        centres = grid[half:size:step, half:size:step]
        corners = grid[0:size:step, 0:size:step]
        left = centres + np.roll(centres, 1, axis=0) + corners + np.roll(corners, -1, axis=1)
        grid[0:size:step, half:size:step] = noisy(left)
        top = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=0)
        grid[half:size:step, 0:size:step] = noisy(top)
        step //= 2
        wibble /= decay
    grid -= grid.min()
    return grid / grid.max()


def fog(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A plasma fractal added with weight ``a``, then the range scaled back by
    ``max / (max + a)``."""
    a, decay = _FOG[severity - 1]
    x = to_float(image)
    h, w = x.shape[:2]
    size = 1 << max(1, int(np.ceil(np.log2(max(h, w)))))
    top = x.max()
    x = x + a * _plasma_fractal(size, decay, rng)[:h, :w, None]
    return to_uint8(np.clip(x * top / (top + a), 0, 1))


def elastic_transform(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A random affine jitter of three points (OpenCV, mirrored borders), then each pixel
    read (bilinear) from a smoothly displaced place: uniform noise in [-1, 1] smoothed by
    a Gaussian of ``sigma`` and scaled by ``alpha``."""
    cv2 = extra_module("cv2")
    ndimage = extra_module("scipy.ndimage")
    alpha, sigma, jitter = _ELASTIC[severity - 1]
    x = to_float(image).astype(np.float32)
    h, w = x.shape[:2]
    centre = np.float32((h, w)) // 2
    side = min(h, w) // 3
    src = np.float32(
        [centre + side, [centre[0] + side, centre[1] - side], centre - side]
    )  # (row, column) pairs given as (x, y), as ImageNet-C did
    dst = src + rng.uniform(-jitter, jitter, size=src.shape).astype(np.float32)
    x = cv2.warpAffine(
        x, cv2.getAffineTransform(src, dst), (w, h), borderMode=cv2.BORDER_REFLECT_101
    )
    shift = [
        (
            _gaussian_filter(rng.uniform(-1, 1, size=(h, w)), sigma, mode="reflect", truncate=3)
            * alpha
        ).astype(np.float32)
        for _ in range(2)
    ]
    cols, rows = np.meshgrid(np.arange(w), np.arange(h))
    where = [(rows + shift[1]).ravel(), (cols + shift[0]).ravel()]
    out = np.stack(
        [
            ndimage.map_coordinates(x[:, :, ch], where, order=1, mode="reflect").reshape(h, w)
            for ch in range(3)
        ],
        axis=2,
    )
    return to_uint8(np.clip(out, 0, 1))


NEEDS_EXTRA = (
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "elastic_transform",
)
