"""How per-task losses are combined: equally, or by learned homoscedastic uncertainty."""

from __future__ import annotations

import torch
from torch import nn


class UncertaintyWeighting(nn.Module):
    """Kendall, Gal & Cipolla (2018): ``exp(-s_t)·L_t + s_t`` with a learned ``s_t = log σ_t²`` per task,
    so tasks whose losses live on different scales (Dice+CE vs keypoint L1) balance themselves."""

    def __init__(self, tasks: list[str]) -> None:
        super().__init__()
        self.tasks = list(tasks)
        self.log_vars = nn.Parameter(torch.zeros(len(tasks)))

    def forward(self, loss: torch.Tensor, task: str) -> torch.Tensor:
        s = self.log_vars[self.tasks.index(task)]
        return torch.exp(-s) * loss + s

    def weights(self) -> dict[str, float]:
        return {t: float(torch.exp(-s)) for t, s in zip(self.tasks, self.log_vars.detach())}
