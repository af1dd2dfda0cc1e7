"""`Preprocessing`: how an image becomes model input (size, resize policy, mean/std), in one place.

A model's `M2DINOConfig.preprocessing` is the single source: `M2DINO.predict`, `m2dino evaluate`,
the in-loop validation and the training batches (the transforms resize with it, the collate
normalises with it) all take this one object, so a model is never fed differently at inference
than it was trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .geometry import ResizeGeometry
from .io import ImageLike, to_rgb_uint8
from .resize import resize_image

if TYPE_CHECKING:
    import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def backbone_normalization(timm_name: str | None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) from ``timm.models.get_pretrained_cfg(timm_name)``; ImageNet's when the name is
    ``None`` or unknown to timm (DINOv3's LVD-1689M weights use ImageNet statistics too)."""
    if timm_name is None:
        return IMAGENET_MEAN, IMAGENET_STD
    import timm  # deferred: importing timm costs about a second

    cfg = timm.models.get_pretrained_cfg(timm_name)
    if cfg is None or cfg.mean is None or cfg.std is None:
        return IMAGENET_MEAN, IMAGENET_STD
    return tuple(float(v) for v in cfg.mean), tuple(float(v) for v in cfg.std)


def normalize(images: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> "torch.Tensor":
    """uint8 B×H×W×3 → float32 B×3×H×W, ``(x / 255 − mean) / std`` per channel."""
    import torch  # deferred: scoring and data commands use this package without torch

    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
    return (x - torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)) / \
        torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)


@dataclass(frozen=True)
class Preprocessing:
    """Input size, resize policy and normalisation of a model (its ``config.preprocessing``)."""

    image_size: tuple[int, int]          # model input (H, W); an int means a square
    resize_mode: str = "letterbox"       # "letterbox" (keeps the aspect ratio) or "stretch"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        size = self.image_size
        # frozen: normalised through object.__setattr__, so equal settings compare equal
        object.__setattr__(self, "image_size", (size, size) if isinstance(size, int) else tuple(size))
        object.__setattr__(self, "mean", tuple(self.mean))
        object.__setattr__(self, "std", tuple(self.std))

    def geometry(self, original_size: tuple[int, int]) -> ResizeGeometry:
        """The map from an image of ``original_size`` (H, W) to the model's grid, and back."""
        return ResizeGeometry.create(original_size, self.image_size, self.resize_mode)

    def normalize(self, images: np.ndarray) -> "torch.Tensor":
        return normalize(images, self.mean, self.std)

    def __call__(self, images: Sequence[ImageLike]) -> tuple["torch.Tensor", list[ResizeGeometry]]:
        """Images of any size (path, PIL or numpy; gray or RGB) → normalised B×3×H×W and each one's
        geometry, for mapping predictions back to its original pixels."""
        if len(images) == 0:
            raise ValueError("no images given; expected at least one image (a path, PIL image or numpy array)")
        arrays, geometries = [], []
        for i, image in enumerate(images):
            array = to_rgb_uint8(image, name=None if len(images) == 1 else f"image {i}")
            geometry = self.geometry(array.shape[:2])
            arrays.append(resize_image(array, geometry))
            geometries.append(geometry)
        return self.normalize(np.stack(arrays)), geometries
