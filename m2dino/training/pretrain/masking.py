"""iBOT masks and the student's forward pass with masked patches replaced by a learned mask token."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ...models.backbone import DINOv3Backbone


def random_masks(images: int, grid: tuple[int, int], rng: np.random.Generator,
                 ratio: tuple[float, float] = (0.1, 0.5), probability: float = 0.5) -> np.ndarray:
    """images×(h·w) bool, row-major over the ``grid``: each image is masked with ``probability``, then
    a ``ratio``-range share of its patches (at least one) is covered by random rectangles (blocks, as
    in iBOT/DINOv3, so that a masked patch cannot simply be copied from its neighbours)."""
    height, width = grid
    masks = np.zeros((images, height * width), dtype=bool)
    for row in range(images):
        if rng.random() < probability:
            target = min(height * width, max(1, round(rng.uniform(*ratio) * height * width)))
            masks[row] = _block_mask(grid, target, rng).ravel()
    return masks


def _block_mask(grid: tuple[int, int], target: int, rng: np.random.Generator) -> np.ndarray:
    """Exactly ``target`` patches: rectangles (aspect 0.3-3.3) while they add patches, then single
    patches to reach the count (a rectangle may overlap earlier ones and add little)."""
    height, width = grid
    mask = np.zeros(grid, dtype=bool)
    for _ in range(10 * target):
        missing = target - int(mask.sum())
        if missing <= 0:
            break
        area = rng.uniform(min(4, missing), missing)
        aspect = np.exp(rng.uniform(np.log(0.3), np.log(1 / 0.3)))
        h = int(np.clip(round(np.sqrt(area * aspect)), 1, height))
        w = int(np.clip(round(np.sqrt(area / aspect)), 1, width))
        if h * w > missing:
            continue
        top, left = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
        mask[top:top + h, left:left + w] = True
    missing = target - int(mask.sum())
    if missing > 0:
        free = np.flatnonzero(~mask.ravel())
        mask.ravel()[rng.choice(free, size=missing, replace=False)] = True
    return mask


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
