from __future__ import annotations

import torch
from torch import nn

from ..losses import classification_loss
from ..outputs import ClassificationOutput
from .base import TaskHead, pooled_features


class ClassificationHead(TaskHead):
    """[CLS ‖ mean patch] → linear, the DINOv3 linear-probe standard."""

    def __init__(self, in_dim: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(2 * in_dim, num_classes)
        nn.init.trunc_normal_(self.linear.weight, std=0.01)
        nn.init.zeros_(self.linear.bias)

    def forward(self, features, levels, task, image_size) -> ClassificationOutput:
        return ClassificationOutput(task, logits=self.linear(pooled_features(features)))

    def loss(self, output: ClassificationOutput, targets: torch.Tensor) -> torch.Tensor:
        return classification_loss(output.logits, targets)
