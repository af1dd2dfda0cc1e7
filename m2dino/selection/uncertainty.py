"""Predictive entropy of a model's output, one definition per label kind (the one table here).

Every function maps a task's typed output for a batch to one number per image (nats), higher
meaning less certain:

- mask: the mean over pixels of the entropy of the per-pixel class softmax;
- class: the entropy of the class probabilities;
- boxes: the mean over heatmap cells (and object classes) of the binary entropy of the centre
  heatmap's sigmoid, the probability that a cell holds an object's centre;
- keypoints: for each keypoint, the entropy of the softmax of its heatmap over all cells (a
  distribution over where the point is), averaged over the keypoints;
- scalar: not defined. A measurement head gives a point estimate without a distribution (and the
  model has no dropout to sample one), so asking for it is an error rather than a made-up number.

The definition is the textbook one, H(p) = −Σ p·log p, computed from logits with
log-softmax / log-sigmoid so that saturated outputs give 0, not NaN.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..models.outputs import ClassificationOutput, DetectionOutput, KeypointOutput, SegmentationOutput, TaskOutput


def categorical_entropy(logits: torch.Tensor, dim: int) -> torch.Tensor:
    """−Σ p·log p of ``softmax(logits)`` along ``dim``."""
    log_p = F.log_softmax(logits.float(), dim=dim)
    return -(log_p.exp() * log_p).sum(dim=dim)


def binary_entropy(logits: torch.Tensor) -> torch.Tensor:
    """−p·log p − (1−p)·log(1−p) of ``sigmoid(logits)``, elementwise."""
    logits = logits.float()
    p = torch.sigmoid(logits)
    return -(p * F.logsigmoid(logits) + (1 - p) * F.logsigmoid(-logits))


def _mask(output: SegmentationOutput) -> torch.Tensor:
    return categorical_entropy(output.logits, dim=1).flatten(1).mean(dim=1)


def _class(output: ClassificationOutput) -> torch.Tensor:
    return categorical_entropy(output.logits, dim=-1)


def _boxes(output: DetectionOutput) -> torch.Tensor:
    return binary_entropy(output.heatmap_logits).flatten(1).mean(dim=1)


def _keypoints(output: KeypointOutput) -> torch.Tensor:
    return categorical_entropy(output.heatmap_logits.flatten(2), dim=-1).mean(dim=1)


def _scalar(output: TaskOutput) -> torch.Tensor:
    raise ValueError(f"task {output.task!r} predicts a scalar measurement: its head gives a point estimate "
                     "with no predictive distribution, so it has no entropy; use --strategy random or coreset")


ENTROPY: dict[str, Callable[..., torch.Tensor]] = {
    "mask": _mask, "class": _class, "boxes": _boxes, "keypoints": _keypoints, "scalar": _scalar,
}


def predictive_entropy(output: TaskOutput, kind: str) -> torch.Tensor:
    """One entropy per image of ``output`` (a batch of task ``kind``'s outputs), shape (B,)."""
    if kind not in ENTROPY:
        raise ValueError(f"no predictive entropy for label kind {kind!r}; known: {', '.join(ENTROPY)}")
    return ENTROPY[kind](output)


__all__ = ["ENTROPY", "binary_entropy", "categorical_entropy", "predictive_entropy"]
