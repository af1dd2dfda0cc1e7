"""Optimizer parameter groups (backbone vs new parts, optional layer-wise decay) and the schedule."""

from __future__ import annotations

import math

import torch
from torch import nn

from .train_config import TrainConfig

NO_DECAY = ("bias", "norm", "gamma_", "cls_token", "reg_token", "task_embedding", "target_mean", "target_std")


def _block_index(name: str) -> int | None:
    parts = name.split(".")
    if "blocks" in parts:
        return int(parts[parts.index("blocks") + 1])
    return None


def _is_backbone(name: str) -> bool:
    # Routers are new (randomly initialised) even inside backbone blocks: they train at the head rate.
    return "backbone." in name and ".router." not in name


def parameter_groups(model: nn.Module, config: TrainConfig, depth: int) -> list[dict]:
    """One group per (learning rate, weight decay) pair; only trainable parameters."""
    groups: dict[tuple[float, float], list[torch.Tensor]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if _is_backbone(name):
            lr = config.backbone_lr
            if config.layer_decay is not None:
                block = _block_index(name)
                # patch embedding and tokens sit below block 0; the final norm sits above the last block
                layer = (block + 1) if block is not None else (depth + 1 if ".norm." in name else 0)
                lr *= config.layer_decay ** (depth + 1 - layer)
        else:
            lr = config.lr
        decay = 0.0 if param.ndim <= 1 or any(k in name for k in NO_DECAY) else config.weight_decay
        groups.setdefault((lr, decay), []).append(param)
    return [{"params": params, "lr": lr, "weight_decay": wd} for (lr, wd), params in groups.items()]


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int,
                  min_lr_ratio: float) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup to each group's lr, then cosine decay to ``min_lr_ratio`` of it."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
