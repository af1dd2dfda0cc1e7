"""Labels derived from other labels."""

from __future__ import annotations

import numpy as np


def box_of_mask(mask: np.ndarray) -> np.ndarray:
    """The 1×4 box (x_min, y_min, x_max, y_max) around a mask's non-zero pixels, in continuous
    pixel coordinates (x_max is one past the last column, so a one-pixel mask has width 1)."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        raise ValueError("cannot box an empty mask")
    return np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=np.float64)
