"""From an echogenicity map to a B-mode image: acoustic shadows and enhancement along the beams,
multiplicative speckle, depth attenuation with partial gain compensation, log compression."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .fov import FieldOfView
from .shapes import Canvas


def beyond(mask: np.ndarray, fov: FieldOfView) -> np.ndarray:
    """Pixels deeper along the same beam than the far edge of ``mask`` (where its shadow falls)."""
    out = np.zeros(mask.shape, dtype=bool)
    if not mask.any():
        return out
    far = np.full(fov.n_beams, -np.inf)
    np.maximum.at(far, fov.beam[mask], fov.axial[mask])  # deepest occluder pixel per beam
    far[np.isneginf(far)] = np.inf  # beams the structure does not cross stay unshadowed
    return fov.inside & (fov.axial > far[fov.beam])


def speckle(rng: np.random.Generator, shape: tuple[int, int], grain: float) -> np.ndarray:
    """Fully developed speckle: the magnitude of smoothed complex Gaussian noise (Rayleigh
    distributed, mean 1). Cells are longer laterally than axially, as with a real beam."""
    sigma = (0.5 * grain, 1.2 * grain)
    noise = rng.standard_normal((2, *shape), dtype=np.float32)
    field = np.hypot(ndimage.gaussian_filter(noise[0], sigma, truncate=2.5),
                     ndimage.gaussian_filter(noise[1], sigma, truncate=2.5))
    return field / max(float(field.mean()), 1e-6)


def render(canvas: Canvas, grain: float = 1.0, attenuation: float = 1.2, gain: float = 1.0) -> np.ndarray:
    """The uint8 H×W×3 B-mode image of ``canvas``; black outside the field of view."""
    fov, rng = canvas.fov, canvas.rng
    echo = canvas.echo.copy()
    for structure, factor in canvas.beam_effects:
        echo[beyond(structure, fov)] *= factor
    # Time-gain compensation undoes most, not all, of the exponential loss with depth.
    depth_gain = np.exp(-attenuation * fov.axial.astype(np.float32))
    intensity = echo * speckle(rng, echo.shape, grain) * depth_gain * gain
    image = np.log1p(6.0 * np.clip(intensity, 0, None)) / np.log1p(6.0)
    image = np.where(fov.inside, np.clip(image * 235.0 + rng.normal(0, 3.0, image.shape).astype(np.float32), 0, 255), 0)
    gray = image.astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)
