from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..losses import segmentation_loss
from ..outputs import SegmentationOutput
from .base import TaskHead
from .dpt import DPTDecoder


class SegmentationHead(TaskHead):
    """DPT fusion of four levels → class logits, upsampled to the input resolution."""

    uses_levels = True

    def __init__(self, in_dim: int, num_classes: int, features: int = 64, dice_weight: float = 1.0) -> None:
        super().__init__()
        self.decoder = DPTDecoder(in_dim, features)
        self.classifier = nn.Sequential(nn.Conv2d(features, features, 3, padding=1), nn.ReLU(),
                                        nn.Conv2d(features, num_classes, 1))
        self.dice_weight = dice_weight

    def forward(self, features, levels, task, image_size) -> SegmentationOutput:
        logits = self.classifier(self.decoder(levels))
        logits = F.interpolate(logits, size=image_size, mode="bilinear", align_corners=False)
        return SegmentationOutput(task, logits=logits)

    def loss(self, output: SegmentationOutput, targets: torch.Tensor) -> torch.Tensor:
        return segmentation_loss(output.logits, targets, self.dice_weight)
