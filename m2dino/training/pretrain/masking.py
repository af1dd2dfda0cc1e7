"""iBOT masks and the student's forward pass with masked patches replaced by a learned mask token."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ...models.backbone import DINOv3Backbone


def random_masks(images: int, patches: int, rng: np.random.Generator, ratio: tuple[float, float] = (0.1, 0.5),
                 probability: float = 0.5) -> np.ndarray:
    """images×patches bool: each image is masked with ``probability``, then a ``ratio``-range share of its
    patches (at least one) chosen at random; the others are left whole."""
    masks = np.zeros((images, patches), dtype=bool)
    for row in range(images):
        if rng.random() < probability:
            count = max(1, int(round(rng.uniform(*ratio) * patches)))
            masks[row, rng.choice(patches, size=min(count, patches), replace=False)] = True
    return masks


def forward_masked(backbone: DINOv3Backbone, pixel_values: torch.Tensor, masks: torch.Tensor | None,
                   mask_token: nn.Parameter) -> torch.Tensor:
    """Final normed tokens (B×(prefix+P)×C) with the ``masks`` (B×P bool) patches' embeddings replaced
    by ``mask_token`` before the first block, as iBOT's student sees them."""
    backbone.check_input(pixel_values)
    x = backbone.patch_embed(pixel_values)  # B×h×w×C
    batch, h, w, channels = x.shape
    x = x.reshape(batch, h * w, channels)
    if masks is not None:
        x = torch.where(masks.unsqueeze(-1), mask_token.to(x.dtype).expand_as(x), x)
    prefix = [backbone.cls_token.expand(batch, -1, -1)]
    if backbone.reg_token is not None:
        prefix.append(backbone.reg_token.expand(batch, -1, -1))
    x = backbone.norm_pre(torch.cat([*prefix, x], dim=1))
    rope = backbone.rope.get_embed(shape=(h, w))
    x, _, _ = backbone.run_blocks(x, rope, (h, w))
    return backbone.norm(x)
