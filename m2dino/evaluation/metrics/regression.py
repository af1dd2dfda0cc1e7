"""Keypoint regression: mean radial error (MRE) in pixels."""

from __future__ import annotations

import numpy as np


def radial_errors(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Euclidean distance (pixels) between each predicted keypoint and its true keypoint, in order."""
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape or pred.ndim != 2 or pred.shape[1] != 2:
        raise ValueError(f"expected two K×2 keypoint arrays of the same shape, got {pred.shape} and {gt.shape}")
    return np.hypot(pred[:, 0] - gt[:, 0], pred[:, 1] - gt[:, 1])


def mean_radial_error(pred: np.ndarray, gt: np.ndarray) -> float:
    """The mean over keypoints of `radial_errors` for one image; the task's MRE is the mean of this
    over images (so every image weighs the same whatever its keypoint count)."""
    return float(radial_errors(pred, gt).mean())
