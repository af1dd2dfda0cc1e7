"""Student, EMA teacher and their heads in one module, whose forward is the whole pretraining loss.

One module so that DDP/FSDP wrap the student and the checkpoint holds everything (teacher
included) in one safetensors file; the teacher and the Gram anchor never receive gradients.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from ...models.backbone import DINOv3Backbone
from ..ema import ema_update
from .head import DINOHead
from .losses import (
    dino_loss,
    gram_loss,
    ibot_loss,
    koleo_loss,
    sinkhorn_knopp,
    teacher_output_entropy,
    teacher_output_spread,
)
from .masking import forward_masked


@dataclass(frozen=True)
class LossConfig:
    prototypes: int = 8192
    ibot_prototypes: int = 8192
    head_hidden: int = 2048
    head_bottleneck: int = 256
    head_layers: int = 3
    student_temperature: float = 0.1
    dino_weight: float = 1.0
    ibot_weight: float = 1.0
    koleo_weight: float = 0.1
    gram_weight: float = 0.0  # > 0: Gram anchoring to a frozen copy of the starting backbone


ROW_BUCKET = 256


def rows_in_buckets(head: nn.Module, rows: torch.Tensor) -> torch.Tensor:
    """``head(rows)`` with the rows zero-padded to a multiple of `ROW_BUCKET` (the padding's outputs
    dropped). The number of masked patches changes every step, and oneDNN keeps memory for every
    matrix shape it meets: unpadded, a 1,600-step CPU run grew by about 6 GB (measured: 12 MB per
    step at batch 16, flat without masks or with this padding). DINOv2's training code likewise runs
    its iBOT head on a buffer of fixed size."""
    count = rows.shape[0]
    padding = -count % ROW_BUCKET
    if padding:
        rows = torch.cat([rows, rows.new_zeros(padding, *rows.shape[1:])])
    return head(rows)[:count]


class SelfDistillation(nn.Module):
    def __init__(self, backbone: DINOv3Backbone, config: LossConfig) -> None:
        super().__init__()
        self.config = config
        dim = backbone.embed_dim
        self.student = backbone
        self.dino_head = DINOHead(dim, config.prototypes, config.head_hidden, config.head_bottleneck,
                                  config.head_layers)
        self.ibot_head = DINOHead(dim, config.ibot_prototypes, config.head_hidden, config.head_bottleneck,
                                  config.head_layers)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        # The teacher starts as the student (heads included) and then follows it by EMA.
        self.teacher = copy.deepcopy(backbone)
        self.teacher_dino_head = copy.deepcopy(self.dino_head)
        self.teacher_ibot_head = copy.deepcopy(self.ibot_head)
        self.gram_anchor = copy.deepcopy(backbone) if config.gram_weight > 0 else None
        for module in self.frozen_modules():
            module.requires_grad_(False)

    def frozen_modules(self) -> list[nn.Module]:
        return [m for m in (self.teacher, self.teacher_dino_head, self.teacher_ibot_head, self.gram_anchor)
                if m is not None]

    def prototype_parameters(self) -> list[nn.Parameter]:
        return [self.dino_head.prototypes, self.ibot_head.prototypes]

    def student_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.teacher, self.student), (self.teacher_dino_head, self.dino_head),
                (self.teacher_ibot_head, self.ibot_head)]

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        """teacher <- momentum · teacher + (1 - momentum) · student."""
        for teacher, student in self.student_pairs():
            ema_update(teacher, student, momentum)

    def forward(self, global_crops: torch.Tensor, local_crops: torch.Tensor | None, masks: torch.Tensor,
                teacher_temperature: float) -> dict[str, torch.Tensor]:
        """``global_crops``: 2B×3×G×G (crop-major: B first crops, then B second crops); ``local_crops``:
        nB×3×L×L or None; ``masks``: 2B×P bool (iBOT). Returns the weighted total and each part."""
        config, prefix = self.config, self.student.num_prefix_tokens
        with torch.no_grad():
            self.teacher.eval()
            teacher_tokens = self.teacher.forward_features(global_crops).tokens
            teacher_cls = self.teacher_dino_head(teacher_tokens[:, 0])
            targets = sinkhorn_knopp(teacher_cls, teacher_temperature)
            teacher_patches = rows_in_buckets(self.teacher_ibot_head, teacher_tokens[:, prefix:][masks])
            patch_targets = sinkhorn_knopp(teacher_patches, teacher_temperature)  # every rank, even unmasked
        student_tokens = forward_masked(self.student, global_crops, masks, self.mask_token)
        student_cls = [student_tokens[:, 0]]
        if local_crops is not None and local_crops.numel():
            student_cls.append(self.student.forward_features(local_crops).tokens[:, 0])
        logits = self.dino_head(torch.cat(student_cls))
        halves = global_crops.shape[0] // 2
        parts = {"dino_loss": dino_loss(list(logits.split(halves)), list(targets.split(halves)),
                                        config.student_temperature)}
        masked_patches = student_tokens[:, prefix:][masks]
        parts["ibot_loss"] = ibot_loss(rows_in_buckets(self.ibot_head, masked_patches), patch_targets, masks,
                                       config.student_temperature)
        parts["koleo_loss"] = sum(koleo_loss(f) for f in student_tokens[:, 0].split(halves)) / 2
        # KoLeo counts once per global crop, as in DINOv3 (its weight multiplies the crops' sum)
        total = (config.dino_weight * parts["dino_loss"] + config.ibot_weight * parts["ibot_loss"]
                 + config.koleo_weight * 2 * parts["koleo_loss"])
        if self.gram_anchor is not None:
            with torch.no_grad():
                self.gram_anchor.eval()
                anchor = self.gram_anchor.forward_features(global_crops).patch_tokens
            parts["gram_loss"] = gram_loss(student_tokens[:, prefix:], anchor)
            total = total + config.gram_weight * parts["gram_loss"]
        parts["loss"] = total
        parts["teacher_spread"] = torch.tensor(teacher_output_spread(teacher_cls))
        parts["teacher_entropy"] = torch.tensor(teacher_output_entropy(teacher_cls, teacher_temperature))
        return parts
