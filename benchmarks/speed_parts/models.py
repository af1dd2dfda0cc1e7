"""The models the speed benchmarks compare, and the mixed-task batches that stress the MoE dispatch."""

from __future__ import annotations

import torch

from m2dino.models import M2DINO, M2DINOConfig

from .plan import Plan


def make_model(plan: Plan, size: int, moe_blocks: tuple[int, ...] = (), experts: int = 8, top_k: int = 1,
               backbone: str | None = None) -> M2DINO:
    """An M2DINO on all registered tasks; seeded, so every variant has the same backbone weights and
    its experts are upcycled copies of the same MLPs."""
    torch.manual_seed(0)
    config = M2DINOConfig(backbone=backbone or plan.backbone, moe_blocks=moe_blocks, num_experts=experts,
                          top_k=top_k, decoder_features=plan.decoder_features, image_size=(size, size))
    return M2DINO(config).to(plan.device)


def pick_mixed_tasks(model: M2DINO, count: int, blocks: tuple[int, ...]) -> tuple[list[str], float]:
    """``count`` tasks chosen greedily to maximise the distinct experts they use in ``blocks`` (the worst
    case for grouped dispatch); also the mean number of distinct experts per block (experts that run)."""
    table = model.routing_table()
    chosen: list[str] = []

    def distinct(tasks: list[str]) -> int:
        return sum(len({expert for t in tasks for expert, _ in table[t][b]}) for b in blocks)

    for _ in range(count):
        chosen.append(max((t for t in model.task_ids if t not in chosen), key=lambda t: distinct(chosen + [t])))
    return chosen, distinct(chosen) / len(blocks)


def mixed_batch(tasks: list[str], batch: int) -> list[str]:
    return [tasks[i % len(tasks)] for i in range(batch)]
