"""The DINO projection head: an MLP to a bottleneck, L2-normalised, onto unit-norm prototypes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DINOHead(nn.Module):
    """``in_dim -> hidden (GELU) ... -> bottleneck``, L2-normalised, then cosine scores against
    ``prototypes`` unit vectors (a weight-normed linear layer with the norm fixed at 1)."""

    def __init__(self, in_dim: int, prototypes: int, hidden_dim: int = 2048, bottleneck_dim: int = 256,
                 layers: int = 3) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"DINOHead layers={layers}: expected at least 1")
        dims = [in_dim] + [hidden_dim] * (layers - 1) + [bottleneck_dim]
        modules: list[nn.Module] = []
        for i in range(layers):
            modules.append(nn.Linear(dims[i], dims[i + 1]))
            if i < layers - 1:
                modules.append(nn.GELU())
        self.mlp = nn.Sequential(*modules)
        self.prototypes = nn.Parameter(torch.empty(prototypes, bottleneck_dim))
        for module in self.mlp:
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
        nn.init.trunc_normal_(self.prototypes, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.normalize(self.mlp(x), dim=-1, eps=1e-6)
        return F.linear(x, F.normalize(self.prototypes, dim=-1, eps=1e-6))
