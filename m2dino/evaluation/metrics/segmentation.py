"""Segmentation metrics on class-index masks: the challenge's Dice and Hausdorff, plus HD95 and NSD.

Conventions (the benchmark's): a class is the set of pixels whose value equals its index; values
outside ``[0, num_classes)`` belong to no class. Dice is 1 when both sets are empty. Distances are
in pixels between pixel centres; when both sets are empty a distance is 0, when exactly one is
empty it is the image diagonal. Surface metrics (HD95, NSD) use the 4-connected boundary of each
set (``distances.boundary``).
"""

from __future__ import annotations

import numpy as np

from .distances import boundary, bounding_box, distance_to_set, exact_crop, image_diagonal


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape or pred.ndim != 2:
        raise ValueError(f"expected two H×W masks of the same shape, got {pred.shape} and {gt.shape}")
    return pred, gt


def _binary_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = _check_pair(pred, gt)
    return pred.astype(bool, copy=False), gt.astype(bool, copy=False)


def resize_nearest(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize exactly as OpenCV's INTER_NEAREST, which the challenge's evaluator
    uses for a prediction of another size: source index = floor(dst_index * src / dst)."""
    mask = np.asarray(mask)
    (src_h, src_w), (dst_h, dst_w) = mask.shape[:2], shape
    rows = np.minimum(np.floor(np.arange(dst_h) * (1.0 / (dst_h / src_h))).astype(np.int64), src_h - 1)
    cols = np.minimum(np.floor(np.arange(dst_w) * (1.0 / (dst_w / src_w))).astype(np.int64), src_w - 1)
    return mask[rows[:, None], cols[None, :]]


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice 2|P∩G| / (|P|+|G|) of two binary masks; 1.0 when both are empty."""
    pred, gt = _binary_pair(pred, gt)
    sizes = np.count_nonzero(pred) + np.count_nonzero(gt)
    return 1.0 if sizes == 0 else 2.0 * np.count_nonzero(pred & gt) / sizes


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
    pred, gt = _binary_pair(pred, gt)
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


def _foreground_scores(pred: np.ndarray, gt: np.ndarray, tolerance: float) -> tuple[float, float, float]:
    """(HD, HD95, NSD) of two non-empty binary masks from one pair of boundary distance transforms.

    Both sets lie inside their union's bounding box and everything outside it is in neither, so
    boundaries and distances computed on the crop equal those on the full image. The HD is exact
    from the same transforms: the nearest pixel of a set to a pixel outside it is a boundary pixel
    (were it interior, its 4-neighbour towards the outside pixel would be in the set and closer).
    """
    box = bounding_box(pred | gt)
    p, g = pred[box], gt[box]
    surface_p, surface_g = boundary(p), boundary(g)
    to_surface_g, to_surface_p = distance_to_set(surface_g), distance_to_set(surface_p)
    hd = max(to_surface_g[p & ~g].max(initial=0.0), to_surface_p[g & ~p].max(initial=0.0))
    from_p, from_g = to_surface_g[surface_p], to_surface_p[surface_g]
    hd95 = max(np.percentile(from_p, 95), np.percentile(from_g, 95))
    nsd = (np.count_nonzero(from_p <= tolerance) + np.count_nonzero(from_g <= tolerance)) / (from_p.size + from_g.size)
    return float(hd), float(hd95), float(nsd)


def surface_scores(pred: np.ndarray, gt: np.ndarray, tolerance: float) -> tuple[float, float]:
    """(HD95, NSD at ``tolerance`` px) of two binary masks, from boundary-to-boundary distances.

    HD95: the larger of the two directed 95th percentiles (NumPy's linear interpolation) of the
    distances from each boundary pixel of one mask to the nearest boundary pixel of the other, as
    MONAI's ``compute_hausdorff_distance(percentile=95)``. NSD (surface Dice, Nikolov et al. 2021):
    the share of both boundaries' pixels lying within ``tolerance`` of the other boundary. Empty
    masks: both empty -> (0, 1); exactly one -> (image diagonal, 0), following the challenge's HD.
    """
    if tolerance < 0:
        raise ValueError(f"NSD tolerance must be >= 0 pixels, got {tolerance}")
    pred, gt = _binary_pair(pred, gt)
    has_pred, has_gt = pred.any(), gt.any()
    if not has_pred and not has_gt:
        return 0.0, 1.0
    if not (has_pred and has_gt):
        return image_diagonal(pred.shape), 0.0
    return _foreground_scores(pred, gt, tolerance)[1:]


def hausdorff_distance_95(pred: np.ndarray, gt: np.ndarray) -> float:
    """HD95 of two binary masks (see `surface_scores`)."""
    return surface_scores(pred, gt, 0.0)[0]


def normalized_surface_dice(pred: np.ndarray, gt: np.ndarray, tolerance: float) -> float:
    """NSD at ``tolerance`` pixels of two binary masks (see `surface_scores`)."""
    return surface_scores(pred, gt, tolerance)[1]


def dice_per_class(pred: np.ndarray, gt: np.ndarray, num_classes: int) -> np.ndarray:
    """`dice` for every class 0..C-1 (background included)."""
    pred, gt = _check_pair(pred, gt)
    return np.array([dice(pred == c, gt == c) for c in range(num_classes)])


def hausdorff_per_class(pred: np.ndarray, gt: np.ndarray, num_classes: int) -> np.ndarray:
    """`hausdorff_distance` for every class 0..C-1 (background included)."""
    pred, gt = _check_pair(pred, gt)
    return np.array([hausdorff_distance(pred == c, gt == c) for c in range(num_classes)])


def class_scores(pred: np.ndarray, gt: np.ndarray, num_classes: int, nsd_tolerance: float) -> dict[str, np.ndarray]:
    """Every per-class score of one image, each class mask built once: ``DSC`` and ``HD`` for classes
    0..C-1, ``HD95`` and ``NSD`` for the foreground classes (NaN at index 0: the background's
    boundary includes the image border, so its surface scores mean nothing)."""
    if nsd_tolerance < 0:
        raise ValueError(f"NSD tolerance must be >= 0 pixels, got {nsd_tolerance}")
    pred, gt = _check_pair(pred, gt)
    scores = {name: np.full(num_classes, np.nan) for name in ("DSC", "HD", "HD95", "NSD")}
    for c in range(num_classes):
        p, g = pred == c, gt == c
        scores["DSC"][c] = dice(p, g)
        if c == 0:
            scores["HD"][c] = hausdorff_distance(p, g)
        elif p.any() and g.any():
            # One pair of distance transforms for all three (half the work of separate calls).
            scores["HD"][c], scores["HD95"][c], scores["NSD"][c] = _foreground_scores(p, g, nsd_tolerance)
        else:
            scores["HD"][c] = hausdorff_distance(p, g)
            scores["HD95"][c], scores["NSD"][c] = surface_scores(p, g, nsd_tolerance)
    return scores
