from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..losses import IGNORE_INDEX, segmentation_loss
from ..outputs import SegmentationOutput
from ..predictions import SegmentationPrediction
from ..spatial_prior import spatial_maps
from .base import PseudoLabels, TaskHead
from .dpt import DPTDecoder


class SegmentationHead(TaskHead):
    """DPT fusion of four levels (and the spatial prior's maps) → class logits, upsampled to the input
    resolution."""

    label_kind, uses_levels = "mask", True

    @classmethod
    def from_spec(cls, spec, in_dim, features):
        return cls(in_dim, spec.num_classes, features)

    def __init__(self, in_dim: int, num_classes: int, features: int = 64, dice_weight: float = 1.0) -> None:
        super().__init__()
        self.decoder = DPTDecoder(in_dim, features)
        self.classifier = nn.Sequential(nn.Conv2d(features, features, 3, padding=1), nn.ReLU(),
                                        nn.Conv2d(features, num_classes, 1))
        self.dice_weight = dice_weight

    def forward(self, features, levels, task, image_size) -> SegmentationOutput:
        logits = self.classifier(self.decoder(levels, spatial_maps(features)))  # the prior's stride-4/8 maps
        logits = F.interpolate(logits, size=image_size, mode="bilinear", align_corners=False)
        return SegmentationOutput(task, logits=logits)

    def loss(self, output: SegmentationOutput, targets: torch.Tensor) -> torch.Tensor:
        return segmentation_loss(output.logits, targets, self.dice_weight)

    def predict(self, output, index, geometry, spec, top_n=None) -> SegmentationPrediction:
        """Logits (not labels) are resized to the original grid, so class borders stay smooth."""
        x0, y0, x1, y1 = geometry.content_box
        logits = output.logits[index:index + 1, :, y0:y1, x0:x1].float()
        logits = F.interpolate(logits, size=geometry.original_size, mode="bilinear", align_corners=False)
        return SegmentationPrediction(mask=logits[0].argmax(0).to(torch.uint8).cpu().numpy())

    def pseudo_labels(self, output: SegmentationOutput, threshold: float) -> PseudoLabels:
        """Per-pixel argmax; pixels below ``threshold`` are ignored by the loss (`IGNORE_INDEX`), and an
        image is kept when any of its pixels is confident."""
        confidence, label = output.logits.detach().float().softmax(dim=1).max(dim=1)
        confident = confidence >= threshold
        label = label.masked_fill(~confident, IGNORE_INDEX)
        keep = confident.flatten(1).any(dim=1)
        return PseudoLabels(label[keep], keep, confident.float().mean())

    def consistency(self, student: SegmentationOutput, teacher: SegmentationOutput) -> torch.Tensor:
        """Mean squared difference of the per-pixel class probabilities (SSL4MIS's mean-teacher loss)."""
        return F.mse_loss(student.logits.float().softmax(1), teacher.logits.detach().float().softmax(1))
