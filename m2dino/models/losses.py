"""Per-task-type losses. Targets are in model-input pixels (what the data pipeline's collate gives)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

IGNORE_INDEX = 255  # mask value excluded from the loss (e.g. letterbox padding, if a dataset marks it)


def segmentation_loss(logits: torch.Tensor, mask: torch.Tensor, dice_weight: float = 1.0) -> torch.Tensor:
    """Cross-entropy + soft Dice over the non-background classes (Dice counters class imbalance:
    small structures such as a fetal heart occupy a few percent of the image)."""
    if mask.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(f"segmentation target of shape {tuple(mask.shape)}; expected "
                         f"{(logits.shape[0], *logits.shape[2:])} (B×H×W class indices at input size)")
    mask = mask.long()
    num_classes = logits.shape[1]
    valid = mask != IGNORE_INDEX
    if (mask[valid] >= num_classes).any() or (mask[valid] < 0).any():
        raise ValueError(f"segmentation target holds class values outside 0..{num_classes - 1}")
    ce = F.cross_entropy(logits.float(), mask, ignore_index=IGNORE_INDEX)
    probs = logits.float().softmax(dim=1) * valid[:, None]
    one_hot = F.one_hot(mask.where(valid, 0), num_classes).permute(0, 3, 1, 2).float() * valid[:, None]
    dims = (0, 2, 3)
    intersection = (probs * one_hot).sum(dims)
    denominator = probs.sum(dims) + one_hot.sum(dims)
    dice = (2 * intersection + 1.0) / (denominator + 1.0)
    return ce + dice_weight * (1 - dice[1:].mean())


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, class_weights: torch.Tensor | None = None,
                        label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy, optionally class-weighted and label-smoothed: exactly `F.cross_entropy`'s
    ``weight`` / ``label_smoothing``. With weights the batch mean is a weighted mean (divided by the
    summed weights of the batch's labels), so the loss keeps the scale of the unweighted one; with
    smoothing the target is ``(1 − ε)·one_hot + ε/C`` and each class's term carries its weight."""
    if labels.shape != logits.shape[:1]:
        raise ValueError(f"classification target of shape {tuple(labels.shape)}; expected ({logits.shape[0]},)")
    if (labels < 0).any() or (labels >= logits.shape[1]).any():
        raise ValueError(f"classification target outside 0..{logits.shape[1] - 1}")
    if class_weights is not None and class_weights.shape != logits.shape[1:]:
        raise ValueError(f"class weights of shape {tuple(class_weights.shape)}; expected ({logits.shape[1]},)")
    weight = None if class_weights is None else class_weights.float()
    return F.cross_entropy(logits.float(), labels.long(), weight=weight, label_smoothing=label_smoothing)


def class_balanced_weights(counts: Sequence[int], beta: float = 1.0) -> torch.Tensor:
    """Per-class loss weights from the training set's class counts, scaled to mean 1 over classes.

    ``w_c ∝ (1 − β) / (1 − β^n_c)``: the inverse of the "effective number of samples" (Cui et al.,
    "Class-Balanced Loss Based on Effective Number of Samples", CVPR 2019). β = 1 is its limit,
    inverse frequency ``w_c ∝ 1 / n_c``; a smaller β flattens the weights (β = 0 would make them
    equal). A class absent from the training set counts as one sample: a zero weight would make a
    batch of only that class (pseudo-labels can be) divide 0 by 0.
    """
    n = np.asarray(counts, dtype=np.float64)
    if n.ndim != 1 or n.size == 0 or (n < 0).any():
        raise ValueError(f"class counts must be a non-empty list of non-negative numbers, got {list(counts)}")
    if not 0 < beta <= 1:
        raise ValueError(f"class-balance beta must be in (0, 1], got {beta}")
    n = np.maximum(n, 1)
    # (1 − β) / (1 − β^n) written with expm1/log so β close to 1 loses no precision.
    weights = 1 / n if beta == 1 else np.expm1(np.log(beta)) / np.expm1(n * np.log(beta))
    return torch.tensor(weights * n.size / weights.sum(), dtype=torch.float32)


def focal_heatmap_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 2.0, beta: float = 4.0
                       ) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss on Gaussian centre heatmaps, normalised by #objects."""
    logits = logits.float()
    pred = logits.sigmoid().clamp(1e-4, 1 - 1e-4)
    positive = target.eq(1).float()
    pos_loss = -F.logsigmoid(logits) * (1 - pred) ** alpha * positive
    neg_loss = -F.logsigmoid(-logits) * pred ** alpha * (1 - target) ** beta * (1 - positive)
    return (pos_loss.sum() + neg_loss.sum()) / positive.sum().clamp(min=1)


def keypoint_loss(pred: torch.Tensor, target: torch.Tensor, image_size: tuple[int, int],
                  interchangeable: bool = False) -> torch.Tensor:
    """L1 between (x, y) points, in units of the input's width/height so sizes are comparable.

    With ``interchangeable`` points each sample takes its best matching of predicted to true points
    (the minimum over the K! orders). Targets already follow the task's left-to-right rule, so the
    heatmaps learn "leftmost end" and "rightmost end"; the minimum only removes the penalty where
    the rule flips (a near-vertical pair), which would otherwise pull both points to the middle.
    """
    if target.shape != pred.shape:
        raise ValueError(f"keypoint target of shape {tuple(target.shape)}; expected {tuple(pred.shape)} (B×K×2, x y)")
    scale = pred.new_tensor([image_size[1], image_size[0]])
    pred, target = pred.float() / scale, target.float() / scale
    if not interchangeable:
        return F.l1_loss(pred, target)
    orders = itertools.permutations(range(pred.shape[1]))
    errors = torch.stack([(pred[:, list(order)] - target).abs().mean(dim=(1, 2)) for order in orders])
    return errors.min(dim=0).values.mean()


def scalar_loss(pred: torch.Tensor, target: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Smooth L1 on standardised values: a head-circumference error of 10 mm and one of 0.1 cm weigh the same."""
    if target.shape != pred.shape:
        raise ValueError(f"scalar target of shape {tuple(target.shape)}; expected {tuple(pred.shape)}")
    return F.smooth_l1_loss((pred.float() - mean) / std, (target.float() - mean) / std)
