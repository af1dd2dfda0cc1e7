"""2. Task-routed MoE against the dense model: per block (the only place the two differ) for the (E, k)
grid, and on the whole backbone for (E, k, placement), single-task and mixed-task batches."""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

from harness.timing import PairedTimer
from m2dino.models import M2DINO

from .model_api import routing
from .models import make_model, mixed_batch, pick_mixed_tasks
from .plan import Plan, placement_blocks
from .steps import forward_fn, token_loss, train_fn

CONTROL = "dense copy (A/A)"


def routing_or_none(model: M2DINO, tasks: list[str] | None):
    """Routing for a batch of ``tasks``; None for the dense model (no tasks)."""
    return routing(model, tasks) if tasks else None


def bench_moe_block(plan: Plan, timer: PairedTimer, size: int, precision: str, grid: tuple[tuple[int, int], ...],
                    control: bool = True) -> dict:
    """One block, dense against TaskMoE(E, k), on the same hidden states (the last block; its position does
    not matter to the cost), single-task and mixed batches, forward and training step. An identical second
    dense model is timed the same way (A/A control: the noise floor)."""
    device = torch.device(plan.device)
    dense = make_model(plan, size)
    depth = dense.backbone.depth
    block = depth - 1
    pixels = torch.randn(plan.batch, 3, size, size, device=device)
    with torch.no_grad():
        hidden, rope, _ = dense.backbone.embed(pixels)
    hidden = hidden.detach()

    def block_forward(model: M2DINO, tasks: list[str] | None):
        return model.backbone.run_block(block, hidden, rope, routing_or_none(model, tasks))

    def block_train(model: M2DINO, tasks: list[str] | None) -> Callable[[], None]:
        x = hidden.clone().requires_grad_()  # backward reaches the block input, as inside a network

        def loss() -> torch.Tensor:
            out, aux = model.backbone.run_block(block, x, rope, routing_or_none(model, tasks))
            return token_loss(out, aux)
        step = train_fn(loss, [*model.backbone.blocks[block].parameters(), *model.task_embedding.parameters()],
                        device, precision)

        def run() -> None:
            step()
            x.grad = None
        return run

    fwd_variants, train_variants = {}, {}
    if control:
        twin = make_model(plan, size)
        fwd_variants[CONTROL] = forward_fn(lambda: block_forward(twin, None), device, precision)
        train_variants[CONTROL] = block_train(twin, None)
    info = {}
    for experts, top_k in grid:
        model = make_model(plan, size, (block,), experts, top_k)
        single = [plan.single_task] * plan.batch
        tasks, distinct = pick_mixed_tasks(model, min(plan.mixed_tasks, plan.batch), (block,))
        with torch.no_grad():
            same = (block_forward(model, single)[0] - block_forward(dense, None)[0]).abs().max().item()
        for kind, batch_tasks in (("single", single), ("mixed", mixed_batch(tasks, plan.batch))):
            name = f"E{experts} k{top_k} {kind}"
            info[name] = {"experts": experts, "top_k": top_k, "batch": kind,
                          "mixed_tasks": tasks if kind == "mixed" else None,
                          "distinct_experts": distinct if kind == "mixed" else top_k,
                          "max_abs_diff_vs_dense": same if kind == "single" else None}
            fwd_variants[name] = forward_fn(lambda m=model, t=batch_tasks: block_forward(m, t), device, precision)
            train_variants[name] = block_train(model, batch_tasks)
    fwd = timer.compare(forward_fn(lambda: block_forward(dense, None), device, precision), fwd_variants,
                        plan.block_rounds[0])
    train = timer.compare(block_train(dense, None), train_variants, plan.block_rounds[1])
    control_cell = {"forward": fwd.pop(CONTROL), "train": train.pop(CONTROL)} if control else None
    cells = [{**meta, "forward": fwd[name], "train": train[name]} for name, meta in info.items()]
    return {"size": size, "precision": precision, "depth": depth, "block": block, "control": control_cell,
            "load": os.getloadavg()[0], "cells": cells}


def bench_moe_model(plan: Plan, timer: PairedTimer, size: int, precision: str,
                    grid: tuple[tuple[int, int, str], ...], control: bool = False) -> dict:
    """Whole backbone (embedding, L blocks, norm): dense against MoE configurations and, with ``control``,
    against an identical second dense model (A/A: the noise floor of these multi-second pairs)."""
    device = torch.device(plan.device)
    dense = make_model(plan, size)
    depth = dense.backbone.depth
    x = torch.randn(plan.batch, 3, size, size, device=device)

    def forward(model: M2DINO, tasks: list[str] | None):
        return model.backbone.forward_features(x, routing_or_none(model, tasks))

    def train(model: M2DINO, tasks: list[str] | None) -> Callable[[], None]:
        def loss() -> torch.Tensor:
            out = forward(model, tasks)
            return token_loss(out.tokens, out.aux_loss)
        return train_fn(loss, [*model.backbone.parameters(), *model.task_embedding.parameters()], device, precision)

    fwd_variants, train_variants, info = {}, {}, {}
    if control:
        twin = make_model(plan, size)
        fwd_variants[CONTROL] = forward_fn(lambda: forward(twin, None), device, precision)
        train_variants[CONTROL] = train(twin, None)
    for experts, top_k, placement in grid:
        blocks = placement_blocks(placement, depth)
        model = make_model(plan, size, blocks, experts, top_k)
        tasks, distinct = pick_mixed_tasks(model, min(plan.mixed_tasks, plan.batch), blocks)
        for kind, batch_tasks in (("single", [plan.single_task] * plan.batch),
                                  ("mixed", mixed_batch(tasks, plan.batch))):
            name = f"E{experts} k{top_k} {placement} {kind}"
            info[name] = {"experts": experts, "top_k": top_k, "placement": placement, "moe_blocks": list(blocks),
                          "batch": kind, "mixed_tasks": tasks if kind == "mixed" else None,
                          "distinct_experts": distinct if kind == "mixed" else top_k}
            fwd_variants[name] = forward_fn(lambda m=model, t=batch_tasks: forward(m, t), device, precision)
            train_variants[name] = train(model, batch_tasks)
    fwd = timer.compare(forward_fn(lambda: forward(dense, None), device, precision), fwd_variants,
                        plan.model_rounds[0])
    trn = timer.compare(train(dense, None), train_variants, plan.model_rounds[1])
    result = {"size": size, "precision": precision, "depth": depth,
              "cells": [{**meta, "forward": fwd[name], "train": trn[name]} for name, meta in info.items()],
              "load": os.getloadavg()[0]}
    if control:  # absent (not None) without a control, as in results measured before it existed
        result["control"] = {"forward": fwd[CONTROL], "train": trn[CONTROL]}
    return result
