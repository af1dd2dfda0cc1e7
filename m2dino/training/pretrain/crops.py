"""Multi-crop for ultrasound: global and local crops taken inside the field of view (the non-black
scan region, not the black frame around a sector), with ultrasound augmentations: flip, speckle,
gain, gamma and blur. No colour jitter (ultrasound is grey-level), and black stays black.

Size policy: an image whose shorter side is below the global crop size is first upscaled (aspect
kept) so that side equals it; one that would need more than ``max_upscale`` times is an error
naming the file (its crops would be interpolation, not anatomy).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from ...data.errors import DataError


@dataclass(frozen=True)
class CropConfig:
    global_size: int = 224
    local_size: int = 96
    local_crops: int = 8
    global_scale: tuple[float, float] = (0.32, 1.0)   # crop area / field-of-view area
    local_scale: tuple[float, float] = (0.05, 0.32)
    min_fov_fraction: float = 0.75   # a crop must be at least this much scan, not frame
    fov_threshold: int = 10          # grey level above which a pixel belongs to the field of view
    max_upscale: float = 4.0
    hflip_p: float = 0.5
    gain: tuple[float, float] = (0.8, 1.25)
    gamma: tuple[float, float] = (0.8, 1.25)
    speckle_sigma: float = 0.15
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    photometric_p: float = 0.8
    blur_p: tuple[float, float] = (1.0, 0.1)  # first and second global crop (locals use 0.5), as in DINO


def field_of_view(image: np.ndarray, threshold: int = 10) -> np.ndarray:
    """H×W bool: pixels brighter than ``threshold`` in any channel."""
    return image.max(axis=2) > threshold


def fit_to_crops(image: np.ndarray, config: CropConfig, source: str) -> np.ndarray:
    """The size policy (module docstring): upscale a too-small image, refuse a far too small one."""
    height, width = image.shape[:2]
    short = min(height, width)
    if short >= config.global_size:
        return image
    factor = config.global_size / max(short, 1)
    if factor > config.max_upscale:
        raise DataError(f"{source}: image is {height}×{width} px, too small for {config.global_size} px global "
                        f"crops (it would be upscaled {factor:.1f}×, more than max_upscale={config.max_upscale}); "
                        "remove it or use smaller crops")
    size = (max(config.global_size, round(width * factor)), max(config.global_size, round(height * factor)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))


class _Coverage:
    """Fraction of field-of-view pixels in any box, in O(1) from a summed-area table."""

    def __init__(self, fov: np.ndarray) -> None:
        self.table = np.pad(fov.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))

    def __call__(self, top: int, left: int, height: int, width: int) -> float:
        t = self.table
        inside = t[top + height, left + width] - t[top, left + width] - t[top + height, left] + t[top, left]
        return float(inside) / (height * width)


def sample_box(fov: np.ndarray, scale: tuple[float, float], min_fov_fraction: float,
               rng: np.random.Generator, tries: int = 20) -> tuple[int, int, int, int]:
    """A square ``(top, left, height, width)`` inside the field of view's bounding box whose area is a
    ``scale`` fraction of the field of view and which is at least ``min_fov_fraction`` scan; after
    ``tries`` the most-scan candidate (never one outside the bounding box)."""
    rows, cols = np.nonzero(fov)
    if rows.size == 0:  # an all-black image: the whole frame is all there is
        rows, cols = np.array([0, fov.shape[0] - 1]), np.array([0, fov.shape[1] - 1])
    top0, bottom, left0, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    box_h, box_w = bottom - top0, right - left0
    area = max(int(fov.sum()), 1)
    coverage = _Coverage(fov)
    best, best_cover = None, -1.0
    for _ in range(tries):
        side = int(round(np.sqrt(rng.uniform(*scale) * area)))
        side = max(1, min(side, box_h, box_w))
        top = int(top0 + rng.integers(0, box_h - side + 1))
        left = int(left0 + rng.integers(0, box_w - side + 1))
        cover = coverage(top, left, side, side)
        if cover >= min_fov_fraction:
            return top, left, side, side
        if cover > best_cover:
            best, best_cover = (top, left, side, side), cover
    return best


def _augment(crop: np.ndarray, config: CropConfig, blur_p: float, rng: np.random.Generator) -> np.ndarray:
    image = crop.astype(np.float32) / 255.0
    if rng.random() < config.hflip_p:
        image = image[:, ::-1]
    if rng.random() < config.photometric_p:  # gamma then gain: probe gain and dynamic range differ by machine
        image = rng.uniform(*config.gain) * image ** rng.uniform(*config.gamma)
    if rng.random() < config.photometric_p and config.speckle_sigma > 0:  # multiplicative, mean 1
        sigma = rng.uniform(0.25, 1.0) * config.speckle_sigma
        shape = 1.0 / sigma**2
        image = image * rng.gamma(shape, 1.0 / shape, size=image.shape[:2])[..., None]
    out = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < blur_p:
        radius = rng.uniform(*config.blur_sigma)
        out = np.asarray(Image.fromarray(out).filter(ImageFilter.GaussianBlur(radius)))
    return out


def crop_resize(image: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    top, left, height, width = box
    crop = Image.fromarray(np.ascontiguousarray(image[top:top + height, left:left + width]))
    return np.asarray(crop.resize((size, size), Image.Resampling.BICUBIC))


def multi_crop(image: np.ndarray, config: CropConfig, rng: np.random.Generator, source: str = "image"
               ) -> tuple[list[np.ndarray], list[np.ndarray], list[tuple[int, int, int, int]]]:
    """Two global and ``local_crops`` local uint8 crops of one H×W×3 image, and every crop's box in the
    (size-policy-adjusted) image, globals first."""
    image = fit_to_crops(image, config, source)
    fov = field_of_view(image, config.fov_threshold)
    boxes, globals_, locals_ = [], [], []
    for index in range(2):
        box = sample_box(fov, config.global_scale, config.min_fov_fraction, rng)
        boxes.append(box)
        globals_.append(_augment(crop_resize(image, box, config.global_size), config, config.blur_p[index], rng))
    for _ in range(config.local_crops):
        box = sample_box(fov, config.local_scale, config.min_fov_fraction, rng)
        boxes.append(box)
        locals_.append(_augment(crop_resize(image, box, config.local_size), config, 0.5, rng))
    return globals_, locals_, boxes
