"""A DPT-style decoder (Ranftl et al. 2021): four ViT levels reassembled at strides 4/8/16/32 and
fused coarse-to-fine into one stride-4 map, shared in structure by the dense-prediction heads.
Maps of the spatial-prior branch (`m2dino.models.spatial_prior`) join as skips at their stride."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn


class ResidualConvUnit(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class FusionBlock(nn.Module):
    """Adds the (refined) skip level to the coarser path, refines, and optionally upsamples ×2."""

    def __init__(self, features: int, upsample: bool = True) -> None:
        super().__init__()
        self.skip_unit = ResidualConvUnit(features)
        self.out_unit = ResidualConvUnit(features)
        self.project = nn.Conv2d(features, features, 1)
        self.upsample = upsample

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if skip is not None:
            if skip.shape[-2:] != x.shape[-2:]:
                # odd patch grids: the stride-32 level rounds up, so align to the finer level
                x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = x + self.skip_unit(skip)
        x = self.out_unit(x)
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return self.project(x)


class Reassemble(nn.Module):
    """Projects one level's patch map to ``features`` channels at stride 16 / ``scale``."""

    def __init__(self, in_dim: int, features: int, scale: float) -> None:
        super().__init__()
        self.project = nn.Conv2d(in_dim, features, 1)
        if scale > 1:
            self.resample = nn.ConvTranspose2d(features, features, int(scale), stride=int(scale))
        elif scale < 1:
            self.resample = nn.Conv2d(features, features, 3, stride=int(1 / scale), padding=1)
        else:
            self.resample = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resample(self.project(x))


class DPTDecoder(nn.Module):
    """Four B×C×h×w patch maps (shallow → deep) → one B×F×4h×4w map (stride 4)."""

    SCALES = (4.0, 2.0, 1.0, 0.5)
    STRIDES = (4, 8, 16, 32)   # of each reassembled level, relative to the input (patch 16 / scale)

    def __init__(self, in_dim: int, features: int = 64) -> None:
        super().__init__()
        self.reassemble = nn.ModuleList(Reassemble(in_dim, features, s) for s in self.SCALES)
        # Fusion runs deep → shallow; the last (stride 4) block does not upsample: heads decide.
        self.fusion = nn.ModuleList(FusionBlock(features, upsample=i > 0) for i in range(len(self.SCALES)))
        self.features = features

    def forward(self, levels: list[torch.Tensor], skips: Mapping[int, torch.Tensor] | None = None) -> torch.Tensor:
        """``skips``: stride → B×F map (the spatial prior's), added to the level of that stride before its
        fusion block refines it (add, then the block's convolutions: a U-Net skip); other strides ignored."""
        if len(levels) != len(self.SCALES):
            raise ValueError(f"DPT decoder expects {len(self.SCALES)} feature levels, got {len(levels)}")
        skips = skips or {}
        maps = [layer(level) for layer, level in zip(self.reassemble, levels)]
        maps = [m + skips[s] if s in skips else m for m, s in zip(maps, self.STRIDES)]
        x = self.fusion[3](maps[3])
        x = self.fusion[2](x, maps[2])
        x = self.fusion[1](x, maps[1])
        return self.fusion[0](x, maps[0])
