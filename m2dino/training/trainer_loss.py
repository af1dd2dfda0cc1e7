"""`LossModule`: what one training step differentiates, as one module."""

from __future__ import annotations

import torch
from torch import nn

from ..models import M2DINO
from .loss_weighting import UncertaintyWeighting
from .semi import SemiSupervision


class LossModule(nn.Module):
    """Model + task-loss weighting (+ the semi-supervised teacher/partner) in one module, so DDP
    synchronises every trainable parameter and a checkpoint holds them all."""

    def __init__(self, model: nn.Module, core: M2DINO, weighting: UncertaintyWeighting | None,
                 semi: SemiSupervision | None = None) -> None:
        super().__init__()
        self.model, self.weighting, self.semi = model, weighting, semi
        self._core = [core]  # a list keeps the (shared) core model out of this module's children twice

    @property
    def core(self) -> M2DINO:
        return self._core[0]

    def forward(self, pixel_values: torch.Tensor, task: str, targets, unlabeled: torch.Tensor | None = None,
                strong: torch.Tensor | None = None, semi_weight: float = 0.0) -> dict[str, torch.Tensor]:
        output = self.model(pixel_values, task=task)
        parts = self.core.loss(output, targets, return_parts=True)
        if self.weighting is not None:
            parts["loss"] = (self.weighting(parts["task_loss"], task)
                             + self.core.config.balance_loss_weight * parts["balance_loss"])
        if self.semi is not None and unlabeled is not None:
            head = self.core.heads[task]
            unlabeled_loss, stats = self.semi.unlabeled_loss(self.model, head, task, unlabeled, strong)
            partner_loss = self.semi.partner_loss(pixel_values, task, targets)
            parts["loss"] = parts["loss"] + partner_loss + semi_weight * unlabeled_loss
            parts.update(unlabeled_loss=unlabeled_loss, partner_loss=partner_loss,
                         **{k: torch.tensor(v) for k, v in stats.items()})
        return parts
