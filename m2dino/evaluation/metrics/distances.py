"""Exact Euclidean distances between binary pixel sets, computed on the smallest exact crop.

Distances are between pixel centres, in pixels (spacing 1), the same quantity SimpleITK's
``HausdorffDistanceImageFilter`` gives the challenge's evaluator.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

Box = tuple[slice, slice]


def image_diagonal(shape: tuple[int, ...]) -> float:
    """sqrt(h² + w²): the challenge's distance when exactly one of two masks is empty."""
    return float(np.hypot(shape[0], shape[1]))


def bounding_box(mask: np.ndarray, margin: int = 0) -> Box | None:
    """The tight (row, column) slices around ``mask``'s true pixels grown by ``margin`` and
    clipped to the image; None for an empty mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    h, w = mask.shape
    return (slice(max(rows[0] - margin, 0), min(rows[-1] + 1 + margin, h)),
            slice(max(cols[0] - margin, 0), min(cols[-1] + 1 + margin, w)))


def _area(box: Box) -> int:
    return (box[0].stop - box[0].start) * (box[1].stop - box[1].start)


def exact_crop(a: np.ndarray, b: np.ndarray) -> Box:
    """A window outside which no pixel changes the distances between sets ``a`` and ``b``.

    Two windows are exact; the smaller is returned:
    - the bounding box of ``a | b``: every point of both sets lies inside it;
    - the bounding box of ``~(a & b)`` grown by one pixel: outside it every pixel is in both sets
      (distance 0), and the one-pixel ring inside it is in both sets too, so the nearest point of
      a set to any inside pixel is inside (clamping an outside point onto the ring only brings it
      closer). This keeps the background class, which covers most of the image, cheap.
    Both masks must be non-empty and differ somewhere.
    """
    union = bounding_box(a | b)
    complement = bounding_box(~(a & b), margin=1)
    return union if _area(union) <= _area(complement) else complement


def distance_to_set(target: np.ndarray) -> np.ndarray:
    """Exact Euclidean distance from every pixel to the nearest true pixel of ``target``."""
    return ndimage.distance_transform_edt(~target)


def boundary(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with at least one 4-neighbour outside it (pixels on the image edge count)."""
    return mask & ~ndimage.binary_erosion(mask, border_value=0)
