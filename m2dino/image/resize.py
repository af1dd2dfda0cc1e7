"""Apply a `ResizeGeometry` to pixels: one implementation shared by training transforms and `predict`,
so the model sees the same interpolation and padding at inference as in training."""

from __future__ import annotations

import numpy as np
from PIL import Image

from .geometry import ResizeGeometry


def _resample(array: np.ndarray, geometry: ResizeGeometry, resample: int, fill: int) -> np.ndarray:
    x0, y0, x1, y1 = geometry.content_box
    content = np.asarray(Image.fromarray(array).resize((x1 - x0, y1 - y0), resample=resample))
    canvas = np.full((*geometry.target_size, *array.shape[2:]), fill, dtype=array.dtype)
    canvas[y0:y1, x0:x1] = content
    return canvas


def resize_image(image: np.ndarray, geometry: ResizeGeometry) -> np.ndarray:
    """uint8 H×W×3 → the model grid (bilinear; letterbox padding is black, like the area outside a scan)."""
    return _resample(image, geometry, Image.BILINEAR, 0)


def resize_mask(mask: np.ndarray, geometry: ResizeGeometry, fill: int = 0) -> np.ndarray:
    """uint8 class-index mask → the model grid (nearest neighbour keeps class values exact)."""
    return _resample(mask, geometry, Image.NEAREST, fill)
