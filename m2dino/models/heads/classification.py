from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..losses import classification_loss
from ..outputs import ClassificationOutput
from ..predictions import ClassificationPrediction
from .base import PseudoLabels, TaskHead, pooled_features


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
        # Training options, not weights: non-persistent, so a saved model's files are the same with or
        # without them and models saved before they existed load unchanged.
        self.register_buffer("class_weights", None, persistent=False)
        self.label_smoothing = 0.0

    def set_loss_options(self, class_weights: torch.Tensor | None = None, label_smoothing: float = 0.0) -> None:
        """Weigh each class's cross-entropy (e.g. `class_balanced_weights` of the training counts) and
        smooth the targets by ``label_smoothing`` (0 = one-hot) from the next `loss` on."""
        num_classes = self.linear.out_features
        if class_weights is not None:
            class_weights = torch.as_tensor(class_weights, dtype=torch.float32)
            if class_weights.shape != (num_classes,) or not (class_weights > 0).all():
                raise ValueError(f"class_weights must be {num_classes} positive numbers, got {class_weights.tolist()}")
            class_weights = class_weights.to(self.linear.weight.device)
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.class_weights, self.label_smoothing = class_weights, float(label_smoothing)

    def forward(self, features, levels, task, image_size) -> ClassificationOutput:
        return ClassificationOutput(task, logits=self.linear(pooled_features(features)))

    def loss(self, output: ClassificationOutput, targets: torch.Tensor) -> torch.Tensor:
        return classification_loss(output.logits, targets, self.class_weights, self.label_smoothing)

    def predict(self, output, index, geometry, spec, top_n=None) -> ClassificationPrediction:
        probs = output.probs[index].float().cpu().numpy()
        return ClassificationPrediction(class_index=int(probs.argmax()), probs=probs)

    def pseudo_labels(self, output: ClassificationOutput, threshold: float) -> PseudoLabels:
        """The argmax class of each image whose top probability reaches ``threshold``."""
        confidence, label = output.logits.detach().float().softmax(dim=-1).max(dim=-1)
        keep = confidence >= threshold
        return PseudoLabels(label[keep], keep, keep.float().mean())

    def consistency(self, student: ClassificationOutput, teacher: ClassificationOutput) -> torch.Tensor:
        """Mean squared difference of the class probabilities (Laine & Aila; SSL4MIS's softmax MSE)."""
        return F.mse_loss(student.logits.float().softmax(-1), teacher.logits.detach().float().softmax(-1))
