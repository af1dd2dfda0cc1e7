"""Segmentation metrics on class-index masks: the challenge's Dice and Hausdorff, plus HD95 and NSD.

Conventions (the benchmark's, see ``docs``): a class is the set of pixels whose value equals its
index; values outside ``[0, num_classes)`` belong to no class. Dice is 1 when both sets are empty.
Distances are in pixels between pixel centres; when both sets are empty a distance is 0, when
exactly one is empty it is the image diagonal. Surface metrics (HD95, NSD) use the 4-connected
boundary of each set (``distances.boundary``).
"""

from __future__ import annotations

import numpy as np

from .distances import boundary, bounding_box, distance_to_set, exact_crop, image_diagonal


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape or pred.ndim != 2:
        raise ValueError(f"expected two H×W masks of the same shape, got {pred.shape} and {gt.shape}")
    return pred, gt


def resize_nearest(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize exactly as OpenCV's INTER_NEAREST, which the challenge's evaluator
    uses for a prediction of another size: source index = floor(dst_index * src / dst)."""
    mask = np.asarray(mask)
    (src_h, src_w), (dst_h, dst_w) = mask.shape[:2], shape
    rows = np.minimum(np.floor(np.arange(dst_h) * (1.0 / (dst_h / src_h))).astype(np.int64), src_h - 1)
    cols = np.minimum(np.floor(np.arange(dst_w) * (1.0 / (dst_w / src_w))).astype(np.int64), src_w - 1)
    return mask[rows[:, None], cols[None, :]]


def confusion_matrix(pred: np.ndarray, gt: np.ndarray, num_classes: int) -> np.ndarray:
    """(C+1)×(C+1) pixel counts [predicted, true]; index C collects values outside the classes."""
    pred, gt = _check_pair(pred, gt)
    c = num_classes
    index = np.minimum(pred.astype(np.int64), c) * (c + 1) + np.minimum(gt.astype(np.int64), c)
    return np.bincount(index.ravel(), minlength=(c + 1) ** 2).reshape(c + 1, c + 1)


def dice_per_class(pred: np.ndarray, gt: np.ndarray, num_classes: int) -> np.ndarray:
    """Dice 2|P∩G| / (|P|+|G|) for every class 0..C-1 (background included); 1.0 when both are empty."""
    counts, c = confusion_matrix(pred, gt, num_classes), num_classes
    sizes = counts[:c, :].sum(axis=1) + counts[:, :c].sum(axis=0)
    intersection = np.diag(counts)[:c]
    return np.where(sizes == 0, 1.0, 2.0 * intersection / np.maximum(sizes, 1))


def _directed_max(source: np.ndarray, target: np.ndarray) -> float:
    # Points of `source` inside `target` are at distance 0; every other point can be the maximum,
    # including interior points (a disc inside the hole of a ring is farthest from it at its
    # centre), so the maximum is taken over all of them, not only over the boundary.
    outside = source & ~target
    if not outside.any():
        return 0.0
    return float(distance_to_set(target)[outside].max())


def hausdorff_distance(pred: np.ndarray, gt: np.ndarray) -> float:
    """Symmetric Hausdorff distance between two binary masks' pixel sets (the challenge's HD)."""
    pred, gt = _check_pair(pred, gt)
    pred, gt = pred.astype(bool, copy=False), gt.astype(bool, copy=False)
    has_pred, has_gt = pred.any(), gt.any()
    if not has_pred and not has_gt:
        return 0.0
    if not (has_pred and has_gt):
        return image_diagonal(pred.shape)
    if not (pred ^ gt).any():
        return 0.0
    box = exact_crop(pred, gt)
    p, g = pred[box], gt[box]
    return max(_directed_max(p, g), _directed_max(g, p))


def hausdorff_per_class(pred: np.ndarray, gt: np.ndarray, num_classes: int) -> np.ndarray:
    """`hausdorff_distance` for every class 0..C-1 (background included)."""
    pred, gt = _check_pair(pred, gt)
    return np.array([hausdorff_distance(pred == c, gt == c) for c in range(num_classes)])


def surface_distances(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distances from each boundary pixel of ``pred`` to the nearest boundary pixel of ``gt``, and
    the reverse. Both masks must be non-empty."""
    pred, gt = _check_pair(pred, gt)
    pred, gt = pred.astype(bool, copy=False), gt.astype(bool, copy=False)
    # Both sets lie inside their union's bounding box and everything outside it is in neither,
    # so boundaries and distances computed on the crop equal those on the full image.
    box = bounding_box(pred | gt)
    if box is None:
        raise ValueError("surface distances need two non-empty masks")
    surface_pred, surface_gt = boundary(pred[box]), boundary(gt[box])
    return distance_to_set(surface_gt)[surface_pred], distance_to_set(surface_pred)[surface_gt]


def hausdorff_distance_95(pred: np.ndarray, gt: np.ndarray) -> float:
    """HD95: the larger of the two directed 95th percentiles (NumPy's linear interpolation) of the
    boundary-to-boundary distances, as MONAI's ``compute_hausdorff_distance(percentile=95)``.
    Empty masks follow the challenge's HD: 0 when both are empty, the diagonal when one is."""
    pred, gt = _check_pair(pred, gt)
    has_pred, has_gt = bool(np.any(pred)), bool(np.any(gt))
    if not has_pred and not has_gt:
        return 0.0
    if not (has_pred and has_gt):
        return image_diagonal(pred.shape)
    to_gt, to_pred = surface_distances(pred, gt)
    return float(max(np.percentile(to_gt, 95), np.percentile(to_pred, 95)))


def normalized_surface_dice(pred: np.ndarray, gt: np.ndarray, tolerance: float) -> float:
    """NSD (surface Dice, Nikolov et al. 2021) at ``tolerance`` pixels: the share of both boundaries'
    pixels lying within ``tolerance`` of the other boundary. 1 when both masks are empty, 0 when
    exactly one is."""
    if tolerance < 0:
        raise ValueError(f"NSD tolerance must be >= 0 pixels, got {tolerance}")
    pred, gt = _check_pair(pred, gt)
    has_pred, has_gt = bool(np.any(pred)), bool(np.any(gt))
    if not has_pred and not has_gt:
        return 1.0
    if not (has_pred and has_gt):
        return 0.0
    to_gt, to_pred = surface_distances(pred, gt)
    return float(((to_gt <= tolerance).sum() + (to_pred <= tolerance).sum()) / (to_gt.size + to_pred.size))
