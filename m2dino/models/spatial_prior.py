"""A convolutional spatial-prior branch beside the ViT: high-resolution maps for the dense decoders.

A ViT sees the image in 16-pixel patches, so its finest map is at stride 16 and the DPT decoder must
invent the stride-4 detail from it; trained from scratch on a few hundred scans it has little to
invent it from. The branch adds what a U-Net's encoder gives: a few strided 3×3 convolutions on the
pixels (the locality and translation-equivariance prior of a CNN), read out at strides 4 and 8 and
projected to the decoder width, where the DPT decoder adds them to its reassembled ViT levels. It is
the idea of ViT-Adapter's spatial prior module (Chen et al.,
ICLR 2023) and SAMUS's CNN branch (Lin et al., 2023), kept to its cheapest form: the maps go only to
the decoders, as skip connections, and never into the ViT, so the backbone computes exactly what
DINOv3 computes and pretrained weights load unchanged.

GroupNorm rather than BatchNorm: training batches are small and may mix tasks, `predict_all` runs one
image, and a norm that does not depend on the batch computes the same in training and at inference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from .backbone import BackboneOutput

STEM_WIDTH = 16         # the stride-2 stem: 3×3, stride 2 (its map is not read out: see below)
STRIDES = (4, 8)        # the input-relative strides of the maps read out, one stage each
WIDTHS = (32, 64)       # channels of each stage
DEPTH = 2               # 3×3 convolutions per stage, the first strided
NORM_GROUPS = 8
# Why no stride-2 map: at 128 px on one CPU thread, a stride-2 map at the decoder width (projected, added,
# refined) cost the segmentation training step about a third more on its own, twice what the strides 4
# and 8 cost together; the DPT decoder's output is at stride 4 anyway.


def _conv_norm_relu(in_channels: int, out_channels: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.GroupNorm(math.gcd(NORM_GROUPS, out_channels), out_channels), nn.ReLU()]


class SpatialPrior(nn.Module):
    """``pixel_values`` B×3×H×W → {stride: B×features×H/stride×W/stride} for the strides in `STRIDES`.

    A stride-2 stem, then one stage per stride: a strided 3×3 convolution and ``DEPTH - 1`` more
    (GroupNorm and ReLU after each). Each map is a 1×1 projection of its stage to ``features``
    channels, a linear map that adds to the decoder's own projections of the ViT levels.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(*_conv_norm_relu(3, STEM_WIDTH, stride=2))
        stages, channels = [], STEM_WIDTH
        for width in WIDTHS:
            layers = _conv_norm_relu(channels, width, stride=2)
            for _ in range(DEPTH - 1):
                layers += _conv_norm_relu(width, width)
            stages.append(nn.Sequential(*layers))
            channels = width
        self.stages = nn.ModuleList(stages)
        self.project = nn.ModuleList(nn.Conv2d(width, features, 1) for width in WIDTHS)

    def forward(self, pixel_values: torch.Tensor) -> dict[int, torch.Tensor]:
        maps, x = {}, self.stem(pixel_values)
        for stride, stage, project in zip(STRIDES, self.stages, self.project):
            x = stage(x)
            maps[stride] = project(x)
        return maps


@dataclass
class ModelFeatures(BackboneOutput):
    """What M2DINO's heads read: the backbone's output plus the spatial prior's maps (stride → B×F×h×w;
    empty for a model without the branch, or a batch whose heads read no feature levels)."""

    spatial: dict[int, torch.Tensor] = field(default_factory=dict)

    @classmethod
    def of(cls, backbone: BackboneOutput, spatial: dict[int, torch.Tensor]) -> "ModelFeatures":
        return cls(backbone.tokens, backbone.grid_size, backbone.num_prefix_tokens, backbone.intermediates,
                   backbone.aux_loss, spatial)

    def select(self, rows: torch.Tensor) -> "ModelFeatures":
        """The given batch rows of the backbone's output and of the spatial maps."""
        return ModelFeatures.of(super().select(rows), {s: m[rows] for s, m in self.spatial.items()})


def spatial_maps(features: BackboneOutput) -> dict[int, torch.Tensor]:
    """The spatial prior's maps carried by ``features`` ({} for a plain backbone output)."""
    return features.spatial if isinstance(features, ModelFeatures) else {}
