"""The ten corruptions of ImageNet-C (and its extras) that need only numpy and Pillow:
noise (Gaussian, shot, impulse, speckle), blur (Gaussian, defocus), colour (brightness,
contrast) and digital (JPEG, pixelate), at ImageNet-C's parameters per severity. Each maps
a uint8 ``H x W x 3`` array to a new one, drawing only from the generator it is given.
``corruptions.py`` lists them (with the seven of ``corruptions_extra.py``) and applies
them."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

# ImageNet-C's parameters per severity 1..5
_GAUSSIAN_NOISE = (0.08, 0.12, 0.18, 0.26, 0.38)  # std of additive noise, [0, 1] scale
_SHOT_NOISE = (60, 25, 12, 5, 3)  # photons per unit intensity (Poisson rate)
_IMPULSE_NOISE = (0.03, 0.06, 0.09, 0.17, 0.27)  # share of values set to 0 or 1
_SPECKLE_NOISE = (0.15, 0.2, 0.35, 0.45, 0.6)  # std of multiplicative noise
_GAUSSIAN_BLUR = (1, 2, 3, 4, 6)  # sigma in pixels
_DEFOCUS_BLUR = ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5))  # disk radius, aliasing
_BRIGHTNESS = (0.1, 0.2, 0.3, 0.4, 0.5)  # added to the HSV value
_CONTRAST = (0.4, 0.3, 0.2, 0.1, 0.05)  # factor on the deviation from the channel mean
_JPEG_QUALITY = (25, 18, 15, 10, 7)
_PIXELATE = (0.6, 0.5, 0.4, 0.3, 0.25)  # downscale factor (box filter down and up)


def to_float(image: np.ndarray) -> np.ndarray:
    """uint8 -> float64 in [0, 1] (the scale of ImageNet-C's parameters)."""
    return image.astype(np.float64) / 255.0


def to_uint8(x: np.ndarray) -> np.ndarray:
    """[0, 1] -> uint8, rounded (ImageNet-C truncated) and clipped."""
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


# --- noise ---------------------------------------------------------------------------------


def gaussian_noise(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    x = to_float(image)
    return to_uint8(x + rng.normal(0.0, _GAUSSIAN_NOISE[severity - 1], x.shape))


def shot_noise(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    rate = _SHOT_NOISE[severity - 1]
    return to_uint8(rng.poisson(to_float(image) * rate) / rate)


def impulse_noise(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Salt and pepper: each value (pixel and channel) is replaced with probability
    ``amount``, by 0 or 1 with equal chance."""
    x = to_float(image)
    hit = rng.random(x.shape) < _IMPULSE_NOISE[severity - 1]
    salt = rng.random(x.shape) < 0.5
    x[hit] = salt[hit]
    return to_uint8(x)


def speckle_noise(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    x = to_float(image)
    return to_uint8(x + x * rng.normal(0.0, _SPECKLE_NOISE[severity - 1], x.shape))


# --- blur ----------------------------------------------------------------------------------


def _convolve(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Each channel of ``x`` (H x W x C float) convolved with a square odd-sized
    ``kernel``, borders mirrored; via FFT, same size out."""
    r = kernel.shape[0] // 2
    h, w = x.shape[:2]
    padded = np.pad(x, ((r, r), (r, r), (0, 0)), mode="symmetric")
    ph, pw = padded.shape[:2]
    k = np.zeros((ph, pw))
    k[: kernel.shape[0], : kernel.shape[1]] = kernel
    k = np.roll(k, (-r, -r), axis=(0, 1))  # kernel centre at the origin
    spectrum = np.fft.rfft2(padded, axes=(0, 1)) * np.fft.rfft2(k)[:, :, None]
    out = np.fft.irfft2(spectrum, s=(ph, pw), axes=(0, 1))
    return out[r : r + h, r : r + w]


def _gaussian_kernel(sigma: float) -> np.ndarray:
    r = max(1, int(np.ceil(4.0 * sigma)))
    t = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-0.5 * (t / sigma) ** 2)
    g /= g.sum()
    return np.outer(g, g)


def gaussian_blur(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    return to_uint8(_convolve(to_float(image), _gaussian_kernel(_GAUSSIAN_BLUR[severity - 1])))


def _disk_kernel(radius: int, alias_sigma: float) -> np.ndarray:
    """A normalised disk of ``radius``, softened by a Gaussian of ``alias_sigma``."""
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    disk = (t[:, None] ** 2 + t[None, :] ** 2 <= radius**2).astype(np.float64)
    soft = _gaussian_kernel(alias_sigma)
    disk = np.pad(disk, soft.shape[0] // 2)
    kernel = _convolve(disk[:, :, None], soft)[:, :, 0]
    return kernel / kernel.sum()


def defocus_blur(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    radius, alias = _DEFOCUS_BLUR[severity - 1]
    return to_uint8(_convolve(to_float(image), _disk_kernel(radius, alias)))


# --- colour --------------------------------------------------------------------------------


def brightness(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Add to the HSV value ``V = max(R, G, B)`` (clipped to 1), hue and saturation kept:
    in HSV every channel is proportional to V, so the pixel is scaled by ``V' / V``."""
    x = to_float(image)
    v = x.max(axis=2, keepdims=True)
    v_new = np.clip(v + _BRIGHTNESS[severity - 1], 0.0, 1.0)
    scale = np.divide(v_new, v, out=np.ones_like(v), where=v > 0)
    out = np.where(v > 0, x * scale, v_new)  # black: grey of the new value
    return to_uint8(out)


def contrast(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    x = to_float(image)
    mean = x.mean(axis=(0, 1), keepdims=True)
    return to_uint8((x - mean) * _CONTRAST[severity - 1] + mean)


# --- digital -------------------------------------------------------------------------------


def jpeg_compression(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=_JPEG_QUALITY[severity - 1])
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB")).copy()


def pixelate(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape[:2]
    f = _PIXELATE[severity - 1]
    small = Image.fromarray(image).resize(
        (max(1, int(w * f)), max(1, int(h * f))), Image.Resampling.BOX
    )
    return np.asarray(small.resize((w, h), Image.Resampling.BOX)).copy()
