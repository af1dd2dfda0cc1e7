"""The strong view of a batch: ultrasound-plausible photometric changes plus cutout, no geometry.

Geometry stays fixed so a pseudo-label made on the weak view (the image as the loader gives it)
applies to the strong view pixel for pixel, for masks, boxes and points alike. The changes are
those of the supervised augmentation, stronger: gain, gamma, multiplicative speckle, blur, and one
erased rectangle (FixMatch's Cutout). No colour jitter: B-mode images are grey.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def strong_view(pixel_values: torch.Tensor, mean: Sequence[float], std: Sequence[float],
                generator: torch.Generator) -> torch.Tensor:
    """A strongly perturbed copy of normalised B×3×H×W images (``generator`` makes it reproducible)."""
    batch, _, height, width = pixel_values.shape
    device = pixel_values.device

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return (low + (high - low) * torch.rand(batch, *shape, generator=generator)).to(device)

    mean_t = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, 3, 1, 1)
    x = (pixel_values.float() * std_t + mean_t).clamp(0, 1)
    x = x * uniform(0.6, 1.5, 1, 1, 1)                                    # gain
    x = x.clamp(0, 1) ** uniform(0.6, 1.6, 1, 1, 1)                       # gamma
    speckle = torch.randn(batch, 1, height, width, generator=generator).to(device)
    x = x * (1 + uniform(0.0, 0.3, 1, 1, 1) * speckle)                    # multiplicative speckle
    x = _blur(x, uniform(0.0, 1.5, 1, 1, 1))
    x = _cutout(x, generator)
    return (x.clamp(0, 1) - mean_t) / std_t


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-image Gaussian blur (σ in pixels; σ ≈ 0 leaves the image as it is), 5-tap separable."""
    offsets = torch.arange(-2, 3, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-offsets ** 2 / (2 * sigma.view(-1, 1).clamp(min=1e-3) ** 2))
    kernel = kernel / kernel.sum(dim=1, keepdim=True)                     # B×5
    batch, channels, height, width = x.shape
    flat = x.reshape(1, batch * channels, height, width)
    weights = kernel.repeat_interleave(channels, dim=0)
    flat = F.conv2d(F.pad(flat, (2, 2, 0, 0), mode="replicate"), weights.view(-1, 1, 1, 5), groups=batch * channels)
    flat = F.conv2d(F.pad(flat, (0, 0, 2, 2), mode="replicate"), weights.view(-1, 1, 5, 1), groups=batch * channels)
    return flat.view(batch, channels, height, width)


def _cutout(x: torch.Tensor, generator: torch.Generator, max_fraction: float = 0.4) -> torch.Tensor:
    """Zero one rectangle of up to ``max_fraction`` of each side per image."""
    batch, _, height, width = x.shape
    sizes = torch.rand(batch, 2, generator=generator) * max_fraction
    corners = torch.rand(batch, 2, generator=generator)
    h, w = (sizes[:, 0] * height).long(), (sizes[:, 1] * width).long()
    y0, x0 = (corners[:, 0] * (height - h)).long(), (corners[:, 1] * (width - w)).long()
    ys, xs = torch.arange(height).view(1, height, 1), torch.arange(width).view(1, 1, width)
    box = lambda t: t.view(-1, 1, 1)  # noqa: E731
    hole = (ys >= box(y0)) & (ys < box(y0 + h)) & (xs >= box(x0)) & (xs < box(x0 + w))
    return x.masked_fill(hole[:, None].to(x.device), 0.0)
