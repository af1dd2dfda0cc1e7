"""The self-distillation losses of DINOv3: DINO (CLS), iBOT (masked patches), KoLeo and Gram anchoring.

Teacher targets are balanced with Sinkhorn-Knopp (a soft assignment in which every prototype is
used equally over the batch), which keeps the teacher from collapsing onto one prototype.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F


@torch.no_grad()
def sinkhorn_knopp(teacher_logits: torch.Tensor, temperature: float, iterations: int = 3) -> torch.Tensor:
    """N×K logits -> N×K targets whose rows sum to 1 and whose columns each sum to N/K.

    In float32; in a distributed run the sums (and N) are over all processes' rows, as in DINOv3, so
    every process must call it at the same point, even with N = 0."""
    logits = teacher_logits.float()
    shift = logits.max() if logits.numel() else logits.new_tensor(float("-inf"))
    _all_reduce(shift, dist.ReduceOp.MAX if dist.is_available() else None)
    q = torch.exp((logits - shift) / temperature).t()  # K×N
    prototypes = q.shape[0]
    rows = logits.new_tensor(float(q.shape[1]))
    _all_reduce(rows)
    total = q.sum()
    _all_reduce(total)
    q /= total
    for _ in range(iterations):
        per_prototype = q.sum(dim=1, keepdim=True)
        _all_reduce(per_prototype)
        q /= per_prototype
        q /= prototypes
        q /= q.sum(dim=0, keepdim=True)
        q /= rows
    return (q * rows).t()


def _all_reduce(tensor: torch.Tensor, op=None) -> None:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor, op=op if op is not None else dist.ReduceOp.SUM)


def dino_loss(student_logits: list[torch.Tensor], teacher_targets: list[torch.Tensor],
              student_temperature: float = 0.1) -> torch.Tensor:
    """Cross-entropy of every student crop against every teacher (global) crop, except a global crop
    against itself (student crop i is teacher crop i for i < len(teacher_targets)), averaged over pairs."""
    total, pairs = student_logits[0].new_zeros(()), 0
    for i, logits in enumerate(student_logits):
        log_p = F.log_softmax(logits.float() / student_temperature, dim=-1)
        for j, target in enumerate(teacher_targets):
            if i == j:
                continue
            total = total - (target * log_p).sum(dim=-1).mean()
            pairs += 1
    if pairs == 0:
        raise ValueError("dino_loss needs at least two crops (a student crop that is not the teacher's own)")
    return total / pairs


def ibot_loss(student_logits: torch.Tensor, teacher_targets: torch.Tensor, masks: torch.Tensor,
              student_temperature: float = 0.1) -> torch.Tensor:
    """Cross-entropy on the masked patches only: ``student_logits`` and ``teacher_targets`` are M×K for
    the M masked patches of ``masks`` (B×P bool), in row-major order. As in iBOT and DINOv3, each image
    contributes the mean over its masked patches, and the sum is divided by all B images (unmasked
    ones included), so an image with many masked patches does not outweigh one with few."""
    masks = masks.bool()
    if student_logits.shape[0] != int(masks.sum()) or teacher_targets.shape != student_logits.shape:
        raise ValueError(f"ibot_loss: {int(masks.sum())} masked patches but student logits "
                         f"{tuple(student_logits.shape)} and teacher targets {tuple(teacher_targets.shape)}")
    if not masks.any():  # zero, but still on the head's graph: DDP expects a gradient for every parameter
        return student_logits.sum() * 0.0
    log_p = F.log_softmax(student_logits.float() / student_temperature, dim=-1)
    per_patch = -(teacher_targets * log_p).sum(dim=-1)
    counts = masks.sum(dim=1, keepdim=True).expand_as(masks)[masks].float()
    return (per_patch / counts).sum() / masks.shape[0]


def koleo_loss(features: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Kozachenko-Leonenko regulariser: minus the mean log distance of each (L2-normalised) feature to
    its nearest neighbour in the batch; it spreads the features out."""
    if features.shape[0] < 2:
        raise ValueError("koleo_loss needs at least two features")
    x = F.normalize(features.float(), dim=-1, eps=eps)
    similarity = x @ x.t()
    similarity.fill_diagonal_(-2.0)  # never pick yourself as the nearest neighbour
    nearest = similarity.argmax(dim=1)
    distances = (x - x[nearest]).norm(dim=-1)
    return -torch.log(distances + eps).mean()


def gram_loss(student_patches: torch.Tensor, anchor_patches: torch.Tensor) -> torch.Tensor:
    """Gram anchoring: mean squared difference between the patch-to-patch cosine-similarity matrices
    of the student and of the frozen starting backbone (B×P×C each), which keeps dense features local.
    Negative similarities count as 0 on both sides, as in DINOv3 (only the positive structure is kept)."""
    s = F.normalize(student_patches.float(), dim=-1)
    a = F.normalize(anchor_patches.float(), dim=-1)
    return ((s @ s.transpose(1, 2)).clamp(min=0) - (a @ a.transpose(1, 2)).clamp(min=0)).pow(2).mean()


def teacher_output_entropy(teacher_logits: torch.Tensor, temperature: float) -> float:
    """Mean entropy of each image's softmax(logits / temperature), as a fraction of ln K for K
    prototypes: 1 when the teacher spreads every image evenly over all prototypes. That is the other
    collapse, which `teacher_output_spread` cannot see: Sinkhorn-Knopp then hands the student uniform
    targets, the student learns to predict uniformly, and the DINO loss sits at ln K."""
    prototypes = teacher_logits.shape[-1]
    if teacher_logits.shape[0] == 0 or prototypes < 2:
        return float("nan")
    log_p = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    return float(-(log_p.exp() * log_p).sum(dim=-1).mean() / math.log(prototypes))


def teacher_output_spread(teacher_logits: torch.Tensor) -> float:
    """Standard deviation across the batch of the teacher's logits (mean over prototypes), relative to
    their root mean square: 0 when every image gets the same output (a collapsed teacher), whatever
    the logits' scale. A randomly initialised ViT scores ~1e-6 (its CLS token ignores the image)."""
    if teacher_logits.shape[0] < 2:
        return float("nan")
    x = teacher_logits.float()
    return float(x.std(dim=0).mean() / x.pow(2).mean().sqrt().clamp(min=1e-12))
