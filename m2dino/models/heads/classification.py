from __future__ import annotations

import torch
from torch import nn

from ..losses import classification_loss
from ..outputs import ClassificationOutput
from ..predictions import ClassificationPrediction
from .base import TaskHead, pooled_features


class ClassificationHead(TaskHead):
    """[CLS ‖ mean patch] → linear, the DINOv3 linear-probe standard."""

    label_kind = "class"

    @classmethod
    def from_spec(cls, spec, in_dim, features):
        return cls(in_dim, spec.num_classes)

    def __init__(self, in_dim: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(2 * in_dim, num_classes)
        nn.init.trunc_normal_(self.linear.weight, std=0.01)
        nn.init.zeros_(self.linear.bias)

    def forward(self, features, levels, task, image_size) -> ClassificationOutput:
        return ClassificationOutput(task, logits=self.linear(pooled_features(features)))

    def loss(self, output: ClassificationOutput, targets: torch.Tensor) -> torch.Tensor:
        return classification_loss(output.logits, targets)

    def predict(self, output, index, geometry, spec, top_n=None) -> ClassificationPrediction:
        probs = output.probs[index].float().cpu().numpy()
        return ClassificationPrediction(class_index=int(probs.argmax()), probs=probs)
