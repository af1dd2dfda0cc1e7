"""What every task head shares: the levels it reads and the output/loss pair it defines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ...image import ResizeGeometry
from ...tasks import TaskSpec
from ..backbone import BackboneOutput
from ..outputs import TaskOutput
from ..predictions import Prediction


@dataclass
class PseudoLabels:
    """Hard pseudo-labels from a (teacher's) output, in the head's training-target format.

    ``targets`` hold only the ``keep`` rows (samples with a confident label); ``weight`` is the
    fraction of confident units (pixels for masks, samples otherwise), which scales the loss as
    FixMatch does: unconfident units count as zero in the mean, not as absent.
    """

    targets: Any
    keep: torch.Tensor     # (B,) bool
    weight: torch.Tensor   # scalar in [0, 1]


class TaskHead(nn.Module):
    """A head maps backbone features to a typed output, scores it against targets, and turns one
    sample of its output into a typed prediction in the image's ORIGINAL pixels."""

    label_kind: ClassVar[str]   # the `m2dino.tasks.label_kinds` kind this head predicts
    uses_levels: bool = False   # True: reads the intermediate patch maps (dense prediction), and the
                                # spatial prior's maps where the model has one (`spatial_maps(features)`)
    fits_training_targets: bool = False  # True: `fit_targets` wants the training labels before training

    def fit_targets(self, labels: list) -> None:
        """Adapt to the training set's labels (called once, before training, when `fits_training_targets`)."""

    @classmethod
    def from_spec(cls, spec: TaskSpec, in_dim: int, features: int) -> "TaskHead":
        raise NotImplementedError

    def forward(self, features: BackboneOutput, levels: list[torch.Tensor], task: str,
                image_size: tuple[int, int]) -> TaskOutput:
        raise NotImplementedError

    def loss(self, output: TaskOutput, targets) -> torch.Tensor:
        raise NotImplementedError

    def predict(self, output: TaskOutput, index: int, geometry: ResizeGeometry, spec: TaskSpec,
                top_n: int | None = None) -> Prediction:
        """Sample ``index`` of ``output`` mapped back through ``geometry`` to original pixels."""
        raise NotImplementedError

    # Semi-supervised training (m2dino.training.semi): each head defines what a pseudo-label and a
    # soft consistency target are for its kind of output.
    def pseudo_labels(self, output: TaskOutput, threshold: float) -> PseudoLabels:
        """Hard labels from ``output`` where its confidence is at least ``threshold`` (0 keeps all)."""
        raise NotImplementedError

    def consistency(self, student: TaskOutput, teacher: TaskOutput) -> torch.Tensor:
        """Soft distance between a student's and a (detached) teacher's outputs on the same images."""
        raise NotImplementedError


def pooled_features(features: BackboneOutput) -> torch.Tensor:
    """[CLS ‖ mean patch token]: the DINOv3 linear-probe representation."""
    return torch.cat([features.cls_token, features.patch_tokens.mean(dim=1)], dim=-1)
