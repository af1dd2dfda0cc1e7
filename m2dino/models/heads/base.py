"""What every task head shares: the levels it reads and the output/loss pair it defines."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from ...image import ResizeGeometry
from ...tasks import TaskSpec
from ..backbone import BackboneOutput
from ..outputs import TaskOutput
from ..predictions import Prediction


class TaskHead(nn.Module):
    """A head maps backbone features to a typed output, scores it against targets, and turns one
    sample of its output into a typed prediction in the image's ORIGINAL pixels."""

    label_kind: ClassVar[str]   # the `m2dino.tasks.label_kinds` kind this head predicts
    uses_levels: bool = False   # True: reads the intermediate patch maps (dense prediction)
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


def pooled_features(features: BackboneOutput) -> torch.Tensor:
    """[CLS ‖ mean patch token]: the DINOv3 linear-probe representation."""
    return torch.cat([features.cls_token, features.patch_tokens.mean(dim=1)], dim=-1)
