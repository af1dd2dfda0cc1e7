"""What every task head shares: the levels it reads and the output/loss pair it defines."""

from __future__ import annotations

import torch
from torch import nn

from ..backbone import BackboneOutput
from ..outputs import TaskOutput


class TaskHead(nn.Module):
    """A head maps backbone features to a typed output and scores it against targets."""

    uses_levels: bool = False   # True: reads the intermediate patch maps (dense prediction)

    def forward(self, features: BackboneOutput, levels: list[torch.Tensor], task: str,
                image_size: tuple[int, int]) -> TaskOutput:
        raise NotImplementedError

    def loss(self, output: TaskOutput, targets) -> torch.Tensor:
        raise NotImplementedError


def pooled_features(features: BackboneOutput) -> torch.Tensor:
    """[CLS ‖ mean patch token]: the DINOv3 linear-probe representation."""
    return torch.cat([features.cls_token, features.patch_tokens.mean(dim=1)], dim=-1)
