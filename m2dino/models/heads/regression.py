"""Regression heads: keypoints by heatmap + soft-argmax (integral regression), and one scalar measurement."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..losses import keypoint_loss, scalar_loss
from ..outputs import KeypointOutput, ScalarOutput
from ..predictions import KeypointPrediction, ScalarPrediction
from ..spatial_prior import spatial_maps
from .base import PseudoLabels, TaskHead, pooled_features
from .dpt import DPTDecoder

STRIDE = 4


def soft_argmax(heatmap_logits: torch.Tensor, stride: int) -> torch.Tensor:
    """Expected (x, y) under each heatmap's softmax, in input pixels (cell centres at (i + 0.5)·stride).

    Differentiable, so the coordinate loss trains the heatmaps directly, without Gaussian targets.
    """
    batch, k, h, w = heatmap_logits.shape
    probs = heatmap_logits.float().flatten(2).softmax(dim=-1).view(batch, k, h, w)
    xs = (torch.arange(w, device=probs.device, dtype=probs.dtype) + 0.5) * stride
    ys = (torch.arange(h, device=probs.device, dtype=probs.dtype) + 0.5) * stride
    return torch.stack([(probs.sum(dim=2) * xs).sum(-1), (probs.sum(dim=3) * ys).sum(-1)], dim=-1)


class KeypointHead(TaskHead):
    label_kind, uses_levels = "keypoints", True
    MAX_INTERCHANGEABLE = 5   # the loss tries all K! orders of interchangeable points

    @classmethod
    def from_spec(cls, spec, in_dim, features):
        return cls(in_dim, spec.num_keypoints, features, interchangeable=spec.interchangeable_points)

    def __init__(self, in_dim: int, num_keypoints: int, features: int = 64, interchangeable: bool = False) -> None:
        super().__init__()
        if interchangeable and num_keypoints > self.MAX_INTERCHANGEABLE:
            raise ValueError(f"{num_keypoints} interchangeable keypoints: the matching loss tries every order, "
                             f"at most {self.MAX_INTERCHANGEABLE} points")
        self.interchangeable = interchangeable
        self.decoder = DPTDecoder(in_dim, features)
        self.heatmap = nn.Sequential(nn.Conv2d(features, features, 3, padding=1), nn.ReLU(),
                                     nn.Conv2d(features, num_keypoints, 1))

    def forward(self, features, levels, task, image_size) -> KeypointOutput:
        logits = self.heatmap(self.decoder(levels, spatial_maps(features)))  # the prior's stride-4/8 maps
        return KeypointOutput(task, heatmap_logits=logits, keypoints=soft_argmax(logits, STRIDE))

    def loss(self, output: KeypointOutput, targets: torch.Tensor) -> torch.Tensor:
        h, w = output.heatmap_logits.shape[-2:]
        return keypoint_loss(output.keypoints, targets, (h * STRIDE, w * STRIDE), self.interchangeable)

    def predict(self, output, index, geometry, spec, top_n=None) -> KeypointPrediction:
        """Points in original pixels, in the task's point order."""
        return KeypointPrediction(points=spec.label_kind.to_original(output.keypoints[index].cpu().numpy(), geometry))

    def pseudo_labels(self, output: KeypointOutput, threshold: float) -> PseudoLabels:
        """The teacher's points, for images where every heatmap is peaked: the probability mass in
        the 3×3 cells around each heatmap's maximum (a point localised within ±1.5 cells) reaches
        ``threshold``."""
        logits = output.heatmap_logits.detach().float()
        batch, k, h, w = logits.shape
        probs = logits.flatten(2).softmax(dim=-1).view(batch * k, 1, h, w)
        around_peak = F.avg_pool2d(probs, 3, stride=1, padding=1, count_include_pad=True) * 9
        confidence = around_peak.flatten(1).max(dim=1).values.view(batch, k).min(dim=1).values
        keep = confidence >= threshold
        return PseudoLabels(output.keypoints.detach()[keep], keep, keep.float().mean())

    def consistency(self, student: KeypointOutput, teacher: KeypointOutput) -> torch.Tensor:
        """The supervised point distance (same scale, same matching of interchangeable points) to the
        teacher's points."""
        h, w = student.heatmap_logits.shape[-2:]
        return keypoint_loss(student.keypoints, teacher.keypoints.detach(), (h * STRIDE, w * STRIDE),
                             self.interchangeable)


class ScalarHead(TaskHead):
    """[CLS ‖ mean patch] → MLP → one value; trained on standardised targets (see `set_target_stats`)."""

    label_kind, fits_training_targets = "scalar", True

    @classmethod
    def from_spec(cls, spec, in_dim, features):
        return cls(in_dim)

    def __init__(self, in_dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2 * in_dim, in_dim), nn.GELU(), nn.Linear(in_dim, 1))
        self.register_buffer("target_mean", torch.tensor(0.0))
        self.register_buffer("target_std", torch.tensor(1.0))

    def fit_targets(self, labels: list) -> None:
        """Standardise on the training values (a head-circumference MLP then predicts O(1) numbers)."""
        values = np.asarray(labels, dtype=np.float64)
        self.set_target_stats(float(values.mean()), float(values.std() or 1.0))

    def set_target_stats(self, mean: float, std: float) -> None:
        if not std > 0:
            raise ValueError(f"target std must be positive, got {std}")
        self.target_mean.fill_(mean)
        self.target_std.fill_(std)

    def forward(self, features, levels, task, image_size) -> ScalarOutput:
        standardised = self.mlp(pooled_features(features)).squeeze(-1)
        return ScalarOutput(task, value=standardised * self.target_std + self.target_mean)

    def loss(self, output: ScalarOutput, targets: torch.Tensor) -> torch.Tensor:
        return scalar_loss(output.value, targets, self.target_mean, self.target_std)

    def predict(self, output, index, geometry, spec, top_n=None) -> ScalarPrediction:
        return ScalarPrediction(value=float(output.value[index]), unit=spec.scalar_unit)

    def pseudo_labels(self, output: ScalarOutput, threshold: float) -> PseudoLabels:
        """Every teacher value: a regression output carries no calibrated confidence to threshold."""
        keep = torch.ones_like(output.value, dtype=torch.bool)
        return PseudoLabels(output.value.detach(), keep, keep.float().mean())

    def consistency(self, student: ScalarOutput, teacher: ScalarOutput) -> torch.Tensor:
        """Squared difference of the standardised values (the unit does not set the loss scale)."""
        return F.mse_loss((student.value.float() - self.target_mean) / self.target_std,
                          (teacher.value.detach().float() - self.target_mean) / self.target_std)
