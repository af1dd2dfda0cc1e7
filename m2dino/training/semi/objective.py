"""`SemiSupervision`: the unlabelled half of a step, for every task kind, in one module.

It lives inside the trainer's loss module, so the EMA teacher and the CNN partner are saved and
resumed with the model, and the partner's parameters are optimised (and, under DDP, synchronised)
with it. What a pseudo-label or a consistency target is for a kind of output is the task head's
business (`TaskHead.pseudo_labels`, `TaskHead.consistency`); in a multi-task model the unlabelled
batch of a step is labelled for that step's task only.
"""

from __future__ import annotations

import copy
import dataclasses

import torch
from torch import nn

from ...models import M2DINO
from ...models.heads import TaskHead
from ...models.outputs import TaskOutput
from ..ema import ema_update
from .partner import CNNPartner, PartnerConfig
from .semi_config import SemiConfig


def pseudo_label_loss(head: TaskHead, student: TaskOutput, target: TaskOutput, threshold: float
                      ) -> tuple[torch.Tensor, float]:
    """The head's supervised loss on ``target``'s confident pseudo-labels, scaled by the confident
    fraction; and that fraction (logged: a threshold nothing passes teaches nothing)."""
    pseudo = head.pseudo_labels(target, threshold)
    if not bool(pseudo.keep.any()):
        return _zero_like(student), 0.0
    rows = pseudo.keep.nonzero()[:, 0]
    return head.loss(student.select(rows), pseudo.targets) * pseudo.weight, float(pseudo.weight)


def _zero_like(output: TaskOutput) -> torch.Tensor:
    """A zero that still touches the student's graph (DDP expects every used parameter to get a gradient)."""
    tensors = [v for v in vars(output).values() if isinstance(v, torch.Tensor) and v.requires_grad]
    return sum((t.sum() * 0.0 for t in tensors[1:]), tensors[0].sum() * 0.0)


class SemiSupervision(nn.Module):
    def __init__(self, config: SemiConfig, student: nn.Module, core: M2DINO) -> None:
        super().__init__()
        self.config = config
        self.teacher = copy.deepcopy(student) if config.uses_teacher else None
        if self.teacher is not None:
            self.teacher.requires_grad_(False)
        self.partner = None
        if config.method == "cps":
            pre = core.config.preprocessing
            self.partner = CNNPartner(PartnerConfig(tasks=list(core.task_ids), image_size=pre.image_size,
                                                    encoder=config.partner,
                                                    decoder_features=core.config.decoder_features,
                                                    resize_mode=pre.resize_mode, mean=pre.mean, std=pre.std))
            for task in core.task_ids:  # e.g. a measurement head's target standardisation, as fitted
                mine = dict(self.partner.heads[task].named_buffers())
                for name, buffer in core.heads[task].named_buffers():
                    if name in mine and mine[name].shape == buffer.shape:
                        mine[name].copy_(buffer)

    def train(self, mode: bool = True) -> "SemiSupervision":
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()  # stable targets: no dropout or drop-path in the teacher
        return self

    def partner_loss(self, pixel_values: torch.Tensor, task: str, targets) -> torch.Tensor:
        """cps: the partner's supervised loss on the labelled batch (zero for the other methods)."""
        if self.partner is None:
            return pixel_values.new_zeros(())
        return self.partner.loss(self.partner(pixel_values, task), targets)

    def unlabeled_loss(self, student: nn.Module, head: TaskHead, task: str, weak: torch.Tensor,
                       strong: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """The unlabelled loss for ``task`` on one batch (before the ramped weight) and what to log."""
        config = self.config
        student_out = student(strong, task=task)
        if config.method == "mean-teacher":
            with torch.no_grad():
                teacher_out = self.teacher(weak, task=task)
            return head.consistency(student_out, teacher_out), {}
        if config.method == "fixmatch":
            with torch.no_grad():
                teacher_out = self.teacher(weak, task=task)
            loss, confident = pseudo_label_loss(head, student_out, teacher_out, config.threshold)
            return loss, {"confident": confident}
        partner_out = self.partner(strong, task)
        partner_head = self.partner.heads[task]
        to_student, confident = pseudo_label_loss(head, student_out, _detached(partner_out), config.threshold)
        to_partner, _ = pseudo_label_loss(partner_head, partner_out, _detached(student_out), config.threshold)
        return to_student + to_partner, {"confident": confident}

    @torch.no_grad()
    def update_teacher(self, student: nn.Module) -> None:
        if self.teacher is None:
            return
        ema_update(self.teacher, student, self.config.ema_momentum)
        for t, s in zip(self.teacher.buffers(), student.buffers()):
            t.copy_(s)


def _detached(output: TaskOutput) -> TaskOutput:
    return dataclasses.replace(output, **{k: v.detach() for k, v in vars(output).items()
                                          if isinstance(v, torch.Tensor) and k != "aux_loss"})
