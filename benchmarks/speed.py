"""Model speed, as ratios measured side by side in one run (issue 6): backbone vs timm, MoE overhead,
all 27 tasks at once, and (on a GPU) training throughput and model FLOP utilisation.

1. **Backbone vs timm**: m2dino's `DINOv3Backbone` (no MoE) against timm's model with the same weights,
   forward and training step (forward + backward + AdamW step, loss = mean of the final tokens).
2. **MoE overhead**: task-routed MoE (E experts, top-k) against the dense model, forward and training step
   (loss = mean of tokens + 0.01 × balancing loss), single-task batches and batches mixing 4 tasks.
   Measured per block (a dense block against the same block with its MLP turned into a TaskMoE: the only
   place the two models differ) for the grid, and on the whole backbone for a subset, which checks the
   whole-model ratio predicted from the block ratio: ``1 + (n_moe / L) · (r_block − 1)``.
3. **All tasks at once**: `M2DINO._forward_all(x, all 27 tasks)` (what `predict_all` runs) against one
   task's `model(x, task=t)` on one image, with the backbone and the heads timed apart, against the bound
   ``(L_shared + 27 · L_routed) / L`` blocks of work (+ every head once).
4. **GPU** (``--device cuda``): the same tables in bf16, plus training throughput (images/s) and model FLOP
   utilisation (FLOPs of forward + backward counted by `torch.utils.flop_counter.FlopCounterMode`).

Every timing is interleaved with the one it is compared to (A, B, A, B, … with the order rotated each round)
and each ratio is the median over rounds of the ratio within a round.

    python benchmarks/speed.py                 # CPU, 2 threads, default plan (~20 min on a shared 2-core machine)
    python benchmarks/speed.py --quick         # ~2 min smoke run
    python benchmarks/speed.py --device cuda   # GPU plan: bf16 tables, throughput and MFU (ViT-S, ViT-B)
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import timm
import torch
from torch.utils.flop_counter import FlopCounterMode

from m2dino.models import M2DINO, M2DINOConfig
from m2dino.models.backbone import BackboneOutput, DINOv3Backbone
from m2dino.models.backbone_configs import resolve_backbone
from m2dino.models.m2dino import _select
from m2dino.models.moe import TaskMoE

NAME = "speed"
RESULTS = Path(__file__).parent / "results"
BALANCE_WEIGHT = 0.01
PLACEMENTS = ("last4", "alternate", "all")
# Dense bf16 tensor-core peaks (no sparsity), for MFU; override with --peak-tflops.
PEAK_BF16_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.4, "H200": 989.4, "GH200": 989.4, "B200": 2250.0,
                    "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0}


def placement_blocks(placement: str, depth: int) -> tuple[int, ...]:
    """MoE block indices: the last 4 blocks, every other block (1, 3, …, odd ones), or all blocks."""
    if placement == "last4":
        return tuple(range(depth - 4, depth))
    if placement == "alternate":
        return tuple(range(1, depth, 2))
    if placement == "all":
        return tuple(range(depth))
    raise ValueError(f"unknown placement {placement!r}; expected one of {PLACEMENTS}")


# ------------------------------------------------------------------------------------------ plan
@dataclass
class Plan:
    """What one run measures: cells are (size, precision); grids are (E, k) or (E, k, placement)."""

    device: str = "cpu"
    backbone: str = "vit_small_patch16_dinov3"
    batch: int = 8
    sizes: tuple[int, ...] = (224, 256)
    precisions: tuple[str, ...] = ("fp32", "bf16")
    inner: int = 1                 # calls per timed sample (GPU: several, with a synchronised clock)
    warmup: int = 1
    # 1. backbone vs timm: whole backbone, then the parts that differ (no blocks; 12 blocks on a tiny input)
    backbone_rounds: tuple[int, int] = (5, 3)      # (forward, train) pairs
    glue_rounds: int = 10
    # 2. MoE overhead per block: the full (E, k) grid on `block_full_cells`, `block_subset` on the others
    block_rounds: tuple[int, int] = (10, 6)
    block_full_cells: tuple[tuple[int, str], ...] = ((224, "fp32"), (256, "fp32"), (224, "bf16"), (256, "bf16"))
    block_grid: tuple[tuple[int, int], ...] = ((4, 1), (4, 2), (8, 1), (8, 2))
    block_subset: tuple[tuple[int, int], ...] = ((8, 1),)
    # the same per-block measurement with 1 thread (CPU diagnostic: work without the 2-thread scheduling waits)
    block_one_thread_cells: tuple[tuple[int, str], ...] = ((224, "fp32"),)
    block_one_thread_grid: tuple[tuple[int, int], ...] = ((8, 1), (8, 2))
    # 2. MoE overhead on the whole backbone: (E, k, placement) against dense, on `model_cells`
    model_rounds: tuple[int, int] = (4, 3)
    model_full_cells: tuple[tuple[int, str], ...] = ((224, "fp32"),)   # the full E × k × placement grid
    model_cells: tuple[tuple[int, str], ...] = ((224, "fp32"), (256, "fp32"), (224, "bf16"), (256, "bf16"))
    model_grid: tuple[tuple[int, int, str], ...] = tuple((e, k, p) for e in (4, 8) for k in (1, 2) for p in PLACEMENTS)
    model_subset: tuple[tuple[int, int, str], ...] = ((8, 1, "last4"), (8, 2, "last4"))
    mixed_tasks: int = 4
    # 3. all tasks at once (batch 1)
    all_rounds: int = 5            # pairs (one task, all tasks), whole model
    all_parts_rounds: int = 7      # rounds of backbone / heads parts against one task's backbone
    all_cells: tuple[tuple[int, str], ...] = ((224, "fp32"), (256, "fp32"), (224, "bf16"), (256, "bf16"))
    all_moe: tuple[int, int, str] = (8, 1, "last4")
    decoder_features: int = 64
    single_task: str = "fetal_head"
    # 4. throughput and MFU (GPU)
    throughput: bool = False
    throughput_backbones: tuple[str, ...] = ("vit_small_patch16_dinov3", "vit_base_patch16_dinov3")
    throughput_batch: int = 128
    throughput_size: int = 224
    throughput_rounds: int = 5


def default_plan(device: str, quick: bool) -> Plan:
    if device == "cuda":
        bf16 = tuple((s, "bf16") for s in (224, 256))
        plan = Plan(device="cuda", precisions=("bf16",), inner=20, warmup=5, backbone_rounds=(9, 9), glue_rounds=9,
                    block_rounds=(9, 9), block_full_cells=bf16, block_one_thread_cells=(), model_rounds=(7, 7),
                    model_full_cells=bf16, model_cells=bf16, all_rounds=7, all_parts_rounds=7, all_cells=bf16,
                    throughput=True)
        if quick:
            plan.inner, plan.backbone_rounds, plan.glue_rounds, plan.block_rounds = 5, (3, 3), 3, (3, 3)
            plan.model_rounds, plan.all_rounds, plan.all_parts_rounds, plan.throughput_rounds = (3, 3), 3, 3, 3
            plan.model_full_cells = ()
        return plan
    if quick:
        return Plan(batch=2, sizes=(224,), precisions=("fp32",), backbone_rounds=(1, 1), glue_rounds=3,
                    block_rounds=(3, 2), block_full_cells=(), block_one_thread_cells=(), model_rounds=(1, 1),
                    model_full_cells=(), model_cells=((224, "fp32"),), model_subset=((8, 1, "last4"),),
                    all_rounds=1, all_parts_rounds=1, all_cells=((224, "fp32"),))
    return Plan()


# ---------------------------------------------------------------------------------------- timing
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision != "fp32":
        raise ValueError(f"unknown precision {precision!r}")
    return contextlib.nullcontext()


def stats(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "values": values}


def median(values: list[float]) -> float:
    return statistics.median(values)


# Pairs during which other processes used more than this share of the machine are run again.
INTERFERENCE_LIMIT = 0.15
RETRIES = 2
PAIR_STATS = {"pairs": 0, "rerun": 0, "kept_disturbed": 0}


def cpu_jiffies() -> tuple[int, int] | None:
    """(busy clock ticks of the whole machine, clock ticks of this process), or None without /proc."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        with open("/proc/self/stat") as f:
            own = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    busy = sum(fields[:8]) - fields[3] - fields[4]          # all but idle and iowait
    return busy, int(own[11]) + int(own[12])                 # utime + stime of every thread of ours


def interference(before, after, seconds: float) -> float:
    """Share of the machine's CPU time that other processes used meanwhile (0 = we had it to ourselves)."""
    if before is None or after is None or seconds <= 0:
        return 0.0
    others = (after[0] - before[0]) - (after[1] - before[1])
    return max(0.0, others / (os.sysconf("SC_CLK_TCK") * seconds * (os.cpu_count() or 1)))


def paired(reference: Callable[[], object], variants: dict[str, Callable[[], object]], rounds: int,
           device: torch.device, inner: int = 1, warmup: int = 1) -> dict[str, dict]:
    """Each variant timed right next to the reference, ``rounds`` times: within a round the variants come
    in rotated order and each pair alternates which side runs first. A pair during which other processes
    used more than INTERFERENCE_LIMIT of the machine (from /proc/stat) is run again, up to RETRIES times,
    keeping the least disturbed. Per variant: the within-pair ratios (variant / reference), differences
    (seconds), both sides' times and the other processes' share of the machine during each kept pair."""
    for fn in (reference, *variants.values()):
        for _ in range(warmup):
            fn()
    synchronize(device)

    def clock(fn: Callable[[], object]) -> float:
        synchronize(device)
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        synchronize(device)
        return (time.perf_counter() - start) / inner

    names = list(variants)
    raw = {n: {"variant": [], "reference": [], "interference": []} for n in names}
    for r in range(rounds):
        shift = r % len(names)
        for i, name in enumerate(names[shift:] + names[:shift]):
            best = None
            for attempt in range(RETRIES + 1):
                before, start = cpu_jiffies(), time.perf_counter()
                if (r + i) % 2 == 0:
                    ref = clock(reference)
                    var = clock(variants[name])
                else:
                    var = clock(variants[name])
                    ref = clock(reference)
                share = interference(before, cpu_jiffies(), time.perf_counter() - start)
                if best is None or share < best[2]:
                    best = (ref, var, share)
                if share <= INTERFERENCE_LIMIT:
                    break
            PAIR_STATS["pairs"] += 1
            PAIR_STATS["rerun"] += attempt > 0
            PAIR_STATS["kept_disturbed"] += best[2] > INTERFERENCE_LIMIT
            raw[name]["reference"].append(best[0])
            raw[name]["variant"].append(best[1])
            raw[name]["interference"].append(best[2])
    return {n: {"ratio": stats([v / r for v, r in zip(t["variant"], t["reference"])]),
                "difference_s": stats([v - r for v, r in zip(t["variant"], t["reference"])]),
                "variant_s": t["variant"], "reference_s": t["reference"], "interference": t["interference"]}
            for n, t in raw.items()}


def forward_fn(fn: Callable[[], object], device: torch.device, precision: str) -> Callable[[], None]:
    def call() -> None:
        with torch.no_grad(), autocast(device, precision):
            fn()
    return call


def train_fn(loss_fn: Callable[[], torch.Tensor], params, device: torch.device, precision: str
             ) -> Callable[[], None]:
    """Forward + backward + AdamW step (grads set to None after; unused experts are skipped)."""
    optimizer = torch.optim.AdamW([p for p in params if p.requires_grad], lr=1e-6)

    def step() -> None:
        with autocast(device, precision):
            loss = loss_fn()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def token_loss(tokens: torch.Tensor, aux: torch.Tensor | None = None) -> torch.Tensor:
    loss = tokens.float().mean()
    return loss if aux is None else loss + BALANCE_WEIGHT * aux


def count_flops(fn: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


# ---------------------------------------------------------------------------------------- models
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
    routes = {b: model.backbone.blocks[b].mlp.task_routes(model.task_embedding.weight)[0] for b in blocks}
    chosen: list[int] = []

    def distinct(rows: list[int]) -> int:
        return sum(len(set(routes[b][rows].flatten().tolist())) for b in blocks)

    for _ in range(count):
        best = max((t for t in range(len(model.task_ids)) if t not in chosen), key=lambda t: distinct(chosen + [t]))
        chosen.append(best)
    return [model.task_ids[t] for t in chosen], distinct(chosen) / len(blocks)


def mixed_batch(tasks: list[str], batch: int) -> list[str]:
    return [tasks[i % len(tasks)] for i in range(batch)]


# --------------------------------------------------------------------------- 1. backbone vs timm
def without_blocks(model: torch.nn.Module) -> torch.nn.Module:
    """A copy sharing every module but with no transformer blocks: what is left is the part of the forward
    that differs between m2dino and timm (input check, embedding, prefix tokens, RoPE table, final norm)."""
    stripped = copy.copy(model)
    stripped._modules = dict(model._modules)
    stripped._modules["blocks"] = torch.nn.ModuleList()
    return stripped


def compare(ours: torch.nn.Module, reference: torch.nn.Module, x: torch.Tensor, device: torch.device,
            precision: str, rounds: tuple[int, int], inner: int, warmup: int) -> dict:
    """Forward and training step of m2dino's backbone against timm's, paired."""
    fwd = paired(forward_fn(lambda: reference.forward_features(x), device, precision),
                 {"m2dino": forward_fn(lambda: ours(x), device, precision)}, rounds[0], device, inner, warmup)
    train = paired(train_fn(lambda: token_loss(reference.forward_features(x)), reference.parameters(), device,
                            precision),
                   {"m2dino": train_fn(lambda: token_loss(ours(x)), ours.parameters(), device, precision)},
                   rounds[1], device, inner, warmup)
    return {"forward": fwd["m2dino"], "train": train["m2dino"]}


def bench_backbone(plan: Plan, size: int, precision: str) -> dict:
    device = torch.device(plan.device)
    torch.manual_seed(0)
    ours = DINOv3Backbone(plan.backbone).to(device)
    _, config = resolve_backbone(plan.backbone)
    reference = timm.create_model(config.timm_name, pretrained=False, num_classes=0, global_pool="",
                                  **config.overrides).to(device)
    reference.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(plan.batch, 3, size, size, device=device)
    with torch.no_grad():
        max_diff = (ours(x) - reference.forward_features(x)).abs().max().item()
    whole = compare(ours, reference, x, device, precision, plan.backbone_rounds, plan.inner, plan.warmup)
    glue_rounds = (plan.glue_rounds, plan.glue_rounds)
    # The parts that differ, timed precisely on short calls: (a) no blocks, the real input; (b) all blocks on a
    # one-patch image (the per-block Python of our loop against timm's, compute negligible).
    glue = compare(without_blocks(ours), without_blocks(reference), x, device, precision, glue_rounds,
                   plan.inner, plan.warmup)
    tiny = torch.randn(1, 3, ours.patch_size, ours.patch_size, device=device)
    threads = torch.get_num_threads()
    if device.type == "cpu":
        # Python overhead does not depend on the thread count, and with 2 threads each tiny op waits for both
        # threads to be scheduled, which on a loaded machine is milliseconds of noise per op.
        torch.set_num_threads(1)
    try:
        loop = compare(ours, reference, tiny, device, precision, glue_rounds, plan.inner, plan.warmup)
    finally:
        torch.set_num_threads(threads)
    one = x[:1]
    flops_fwd = count_flops(lambda: forward_fn(lambda: ours(one), device, precision)()) * plan.batch
    flops_train = count_flops(lambda: token_loss(ours(one)).backward()) * plan.batch
    ours.zero_grad(set_to_none=True)
    result = {"size": size, "precision": precision, "max_abs_diff_fp32": max_diff, "load": os.getloadavg()[0],
              "flops": {"forward": flops_fwd, "train": flops_train}, "whole": whole, "glue": glue, "loop": loop}
    # Whole-backbone ratio implied by the measured differences: (timm + Δglue + Δloop) / timm.
    result["implied"] = {step: 1 + (glue[step]["difference_s"]["median"] + loop[step]["difference_s"]["median"])
                         / median(whole[step]["reference_s"]) for step in ("forward", "train")}
    return result


# ---------------------------------------------------------------------------- 2. MoE overhead
def bench_moe_block(plan: Plan, size: int, precision: str, grid: tuple[tuple[int, int], ...],
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
        routing = model._routing(tasks, device) if tasks else None
        return model.backbone.run_block(block, hidden, rope, routing)

    def block_train(model: M2DINO, tasks: list[str] | None) -> Callable[[], None]:
        x = hidden.clone().requires_grad_()  # backward reaches the block input, as inside a network

        def loss() -> torch.Tensor:
            routing = model._routing(tasks, device) if tasks else None
            out, aux = model.backbone.run_block(block, x, rope, routing)
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
        fwd_variants["dense copy (A/A)"] = forward_fn(lambda: block_forward(twin, None), device, precision)
        train_variants["dense copy (A/A)"] = block_train(twin, None)
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
    fwd = paired(forward_fn(lambda: block_forward(dense, None), device, precision), fwd_variants,
                 plan.block_rounds[0], device, plan.inner, plan.warmup)
    train = paired(block_train(dense, None), train_variants, plan.block_rounds[1], device, plan.inner, plan.warmup)
    control_cell = {"forward": fwd.pop("dense copy (A/A)"), "train": train.pop("dense copy (A/A)")} if control else None
    cells = [{**meta, "forward": fwd[name], "train": train[name]} for name, meta in info.items()]
    return {"size": size, "precision": precision, "depth": depth, "block": block, "control": control_cell,
            "load": os.getloadavg()[0],
            "cells": cells}


def bench_moe_model(plan: Plan, size: int, precision: str, grid: tuple[tuple[int, int, str], ...]) -> dict:
    """Whole backbone (embedding, L blocks, norm): dense against MoE configurations."""
    device = torch.device(plan.device)
    dense = make_model(plan, size)
    depth = dense.backbone.depth
    x = torch.randn(plan.batch, 3, size, size, device=device)

    def forward(model: M2DINO, tasks: list[str] | None):
        routing = model._routing(tasks, device) if tasks else None
        return model.backbone.forward_features(x, routing)

    def train(model: M2DINO, tasks: list[str] | None) -> Callable[[], None]:
        def loss() -> torch.Tensor:
            out = forward(model, tasks)
            return token_loss(out.tokens, out.aux_loss)
        return train_fn(loss, [*model.backbone.parameters(), *model.task_embedding.parameters()], device, precision)

    fwd_variants, train_variants, info = {}, {}, {}
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
    fwd = paired(forward_fn(lambda: forward(dense, None), device, precision), fwd_variants, plan.model_rounds[0],
                 device, plan.inner, plan.warmup)
    trn = paired(train(dense, None), train_variants, plan.model_rounds[1], device, plan.inner, plan.warmup)
    cells = [{**meta, "forward": fwd[name], "train": trn[name]} for name, meta in info.items()]
    return {"size": size, "precision": precision, "depth": depth, "cells": cells, "load": os.getloadavg()[0]}


def predicted_model_ratio(block_ratio: float, moe_blocks: int, depth: int) -> float:
    """Whole-backbone ratio from the block ratio, taking the backbone as L equal blocks (embedding, final
    norm and loss make it slightly longer, so the true overhead is slightly smaller: an upper bound)."""
    return 1 + moe_blocks / depth * (block_ratio - 1)


# ------------------------------------------------------------------------ 3. all tasks at once
def backbone_all(model: M2DINO, pixel_values: torch.Tensor, tasks: list[str]) -> BackboneOutput:
    """The backbone part of `M2DINO._forward_all` (same calls, without the heads)."""
    backbone = model.backbone
    wanted = model.feature_blocks
    first = model.moe_blocks[0] if model.moe_blocks else backbone.depth
    x, rope, grid = backbone.embed(pixel_values)
    x, shared, _ = backbone.run_blocks(x, rope, grid, None, wanted, stop=first)
    n = len(tasks)
    routing = model._routing(tasks, pixel_values.device)
    x, routed, aux = backbone.run_blocks(x.expand(n, -1, -1), rope, grid, routing, wanted, start=first)
    levels = {**{b: m.expand(n, -1, -1, -1) for b, m in shared.items()}, **routed}
    return BackboneOutput(backbone.norm(x), grid, backbone.num_prefix_tokens, levels, aux)


def output_tensors(output) -> list[torch.Tensor]:
    return [v for v in vars(output).values() if isinstance(v, torch.Tensor) and v.is_floating_point()]


def bench_all_tasks(plan: Plan, size: int, precision: str) -> dict:
    device = torch.device(plan.device)
    experts, top_k, placement = plan.all_moe
    depth = DINOv3Backbone(plan.backbone).depth
    blocks = placement_blocks(placement, depth)
    model = make_model(plan, size, blocks, experts, top_k).eval()
    tasks = list(model.task_ids)
    task = plan.single_task
    shared_blocks = model.moe_blocks[0]
    x = torch.randn(1, 3, size, size, device=device)
    image_size = (size, size)
    with torch.no_grad(), autocast(device, precision):
        single_features = model.backbone.forward_features(x, model._routing([task], device), model.feature_blocks)
        all_features = backbone_all(model, x, tasks)
        all_outputs = model._forward_all(x, tasks)
        checked = {type(model.heads[t]).__name__: t for t in reversed(tasks)}.values()  # one task per head type
        diffs = {t: max((u.float() - v.float()).abs().max().item() for u, v in
                        zip(output_tensors(all_outputs[t]), output_tensors(model(x, task=t)))) for t in checked}

    def run_heads() -> None:
        for i, t in enumerate(tasks):
            model._run_head(t, _select(all_features, torch.tensor([i])), image_size)

    f = lambda fn: forward_fn(fn, device, precision)  # noqa: E731
    whole = paired(f(lambda: model(x, task=task)), {"all": f(lambda: model._forward_all(x, tasks))},
                   plan.all_rounds, device, plan.inner, plan.warmup)["all"]
    # The parts, each as a ratio to one task's backbone timed next to it (robust to the machine's drift).
    parts = paired(f(lambda: model.backbone.forward_features(x, model._routing([task], device), model.feature_blocks)),
                   {"all_backbone": f(lambda: backbone_all(model, x, tasks)),
                    "single_head": f(lambda: model._run_head(task, single_features, image_size)),
                    "all_heads": f(run_heads)}, plan.all_parts_rounds, device, plan.inner, plan.warmup)
    n = len(tasks)
    bound_blocks = (shared_blocks + n * (depth - shared_blocks)) / depth
    rel = {name: parts[name]["ratio"]["median"] for name in parts}  # in units of one task's backbone
    full_bound = (bound_blocks + rel["all_heads"]) / (1 + rel["single_head"])
    t = {"single": median(whole["reference_s"]), "all": median(whole["variant_s"]),
         "single_backbone": median([v for p in parts.values() for v in p["reference_s"]]),
         **{name: median(parts[name]["variant_s"]) for name in parts}}
    return {"size": size, "precision": precision,
            "moe": {"experts": experts, "top_k": top_k, "placement": placement, "moe_blocks": list(blocks)},
            "tasks": n, "single_task": task, "depth": depth, "shared_blocks": shared_blocks,
            "bound_blocks": bound_blocks, "whole": whole, "parts": parts, "seconds": t, "relative": rel,
            "backbone_vs_bound": rel["all_backbone"] / bound_blocks,
            "full_bound": full_bound, "full_vs_bound": whole["ratio"]["median"] / full_bound,
            "heads_share_all": rel["all_heads"] / (rel["all_heads"] + rel["all_backbone"]),
            "head_share_single": rel["single_head"] / (1 + rel["single_head"]),
            "naive_singles_estimate": n * t["single_backbone"] + t["all_heads"],
            "max_abs_diff_all_vs_single": max(diffs.values()), "checked_tasks": list(diffs),
            "load": os.getloadavg()[0]}


# ------------------------------------------------------------------------ 4. throughput and MFU
def peak_flops(device: torch.device, override: float | None) -> tuple[float | None, str]:
    if override:
        return override * 1e12, f"{override} TFLOPS (given)"
    if device.type != "cuda":
        return None, "unknown (CPU)"
    name = torch.cuda.get_device_name(device)
    for key in sorted(PEAK_BF16_TFLOPS, key=len, reverse=True):
        if all(part in name for part in key.split()):
            return PEAK_BF16_TFLOPS[key] * 1e12, f"{PEAK_BF16_TFLOPS[key]} TFLOPS bf16 dense ({key})"
    return None, f"unknown for {name}; pass --peak-tflops"


def bench_throughput(plan: Plan, peak: float | None) -> list[dict]:
    """Training step (fwd + bwd + AdamW, bf16 autocast) of the backbone, dense and with MoE E8 k1 last4."""
    device = torch.device(plan.device)
    size, batch = plan.throughput_size, plan.throughput_batch
    rows = []
    for name in plan.throughput_backbones:
        x = torch.randn(batch, 3, size, size, device=device)
        steps, flops = {}, {}
        depth = DINOv3Backbone(name).depth
        for label, placement in (("dense", None), ("MoE E8 k1 last4", "last4")):
            model = make_model(plan, size, placement_blocks(placement, depth) if placement else (), 8, 1,
                               backbone=name)
            tasks = [plan.single_task] * batch if placement else None

            def loss(m=model, t=tasks) -> torch.Tensor:
                out = m.backbone.forward_features(x, m._routing(t, device) if t else None)
                return token_loss(out.tokens, out.aux_loss)
            with autocast(device, "bf16"):
                flops[label] = count_flops(lambda: loss().backward())
            model.zero_grad(set_to_none=True)
            steps[label] = train_fn(loss, [*model.backbone.parameters(), *model.task_embedding.parameters()],
                                    device, "bf16")
        times = paired(steps["dense"], {"MoE E8 k1 last4": steps["MoE E8 k1 last4"]}, plan.throughput_rounds,
                       device, max(1, plan.inner // 4), plan.warmup)["MoE E8 k1 last4"]
        for label, seconds in (("dense", times["reference_s"]), ("MoE E8 k1 last4", times["variant_s"])):
            t = median(seconds)
            rows.append({"backbone": name, "variant": label, "batch": batch, "size": size, "seconds": seconds,
                         "images_per_s": batch / t, "flops_per_step": flops[label],
                         "tflops_per_s": flops[label] / t / 1e12, "mfu": flops[label] / t / peak if peak else None,
                         "moe_over_dense": times["ratio"]})
        del steps
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


# -------------------------------------------------------------------------------------- report
def machine_info(device: torch.device, threads: int) -> dict:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info = {"cpu": cpu, "cpus": os.cpu_count(), "threads": threads, "torch": torch.__version__,
            "timm": timm.__version__, "python": platform.python_version(), "device": device.type}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def fmt_ratio(r: dict) -> str:
    return f"{r['median']:.3f} ({r['min']:.2f}–{r['max']:.2f})"


def fmt_ms(r: dict) -> str:
    return f"{1000 * r['median']:+.1f} ({1000 * r['min']:+.1f} to {1000 * r['max']:+.1f})"


def mark(ok: bool) -> str:
    return "✅" if ok else "❌"


def targets(result: dict) -> list[str]:
    """One line per target: met or missed, and by how much (medians; ranges are in the tables)."""
    out = []
    for r in result["backbone"]:
        for step in ("forward", "train"):
            whole, implied = r["whole"][step]["ratio"], r["implied"][step]
            verdict = "met" if implied <= 1.05 else "missed"
            out.append(f"- Backbone ≤ 1.05× timm, {r['size']} {r['precision']} {step}: {verdict} — implied by the "
                       f"measured differences {implied:.4f}; whole-backbone ratio {fmt_ratio(whole)}"
                       + (" (above 1.05, within this machine's noise: see the range)" if whole["median"] > 1.05
                          else "") + ".")
    for cell in result["moe_model"]:
        rows = [(f"E{c['experts']} {c['placement']} {c['batch']} {step}", c[step]["ratio"])
                for c in cell["cells"] if c["top_k"] == 1 for step in ("forward", "train")]
        if rows:
            missed = [f"{name} {fmt_ratio(r)}" for name, r in rows if r["median"] > 1.10]
            worst = max(rows, key=lambda row: row[1]["median"])
            out.append(f"- MoE, task routing, k = 1 ≤ 1.10× dense — whole backbone measured, {cell['size']} "
                       f"{cell['precision']}: met in {len(rows) - len(missed)} of {len(rows)} cells (worst: {worst[0]} "
                       f"{fmt_ratio(worst[1])})" + (f"; missed: {'; '.join(missed)}" if missed else "") + ".")
    for cell in result["moe_block"]:
        if cell.get("threads") == 1:
            continue
        rows = []
        for c in cell["cells"]:
            if c["top_k"] == 1:
                for step in ("forward", "train"):
                    for p in PLACEMENTS:
                        v = predicted_model_ratio(c[step]["ratio"]["median"], len(placement_blocks(p, cell["depth"])),
                                                  cell["depth"])
                        rows.append((f"E{c['experts']} {p} {c['batch']} {step}", v))
        if rows:
            missed = [f"{name} {v:.3f} (+{100 * (v - 1.10):.1f} points)" for name, v in rows if v > 1.10]
            out.append(f"- MoE, task routing, k = 1 ≤ 1.10× dense — predicted from the block, {cell['size']} "
                       f"{cell['precision']}: met in {len(rows) - len(missed)} of {len(rows)} cells"
                       + (f"; missed: {'; '.join(missed)}" if missed else "") + ".")
    for r in result["all_tasks"]:
        out.append(f"- All tasks within 10 % of the bound, {r['size']} {r['precision']}: backbone at "
                   f"{r['backbone_vs_bound']:.2f}× its bound, whole model at {r['full_vs_bound']:.2f}× → "
                   f"{'met' if max(r['backbone_vs_bound'], r['full_vs_bound']) <= 1.10 else 'missed'}.")
    if not result["throughput"]:
        out.append("- GPU tables, throughput and MFU: not measured (no GPU in this session).")
    return out


def markdown(result: dict) -> str:
    plan, m = result["plan"], result["machine"]
    gpu = m["device"] == "cuda"
    batch = plan["batch"]
    lines = [f"# Speed: backbone vs timm, MoE overhead, all tasks at once ({'GPU' if gpu else 'CPU'})", "",
             f"- Command: `{result['command']}`",
             f"- Machine: {m['cpu']}" + (f", GPU {m['gpu']}" if gpu else "") + f"; {m['cpus']} CPU cores shared "
             f"with other people's jobs (load average {result['load_start']:.1f} at the start, "
             f"{result['load_end']:.1f} at the end); torch threads: {m['threads']}",
             f"- torch {m['torch']}, timm {m['timm']}, Python {m['python']}; {result['date']}; run time "
             f"{result['wall_s'] / 60:.1f} min",
             f"- Backbone `{plan['backbone']}`, batch {batch} (part 3: one image), random weights and inputs; "
             "fp32, or bf16 autocast (`torch.autocast`).",
             "- Every ratio is measured side by side: each variant is timed right next to its reference, pair "
             "after pair (rotated, and alternating which side runs first), and the figure is the **median of the "
             "within-pair ratios**, with their range in brackets. Below 1 = faster than the reference. "
             + (f"A pair during which other processes used more than {100 * result['pairs']['limit']:.0f} % of "
                f"the machine's CPU time (read from /proc/stat) was run again, up to {result['pairs']['retries']} "
                f"times, keeping the least disturbed: {result['pairs']['rerun']} of {result['pairs']['pairs']} "
                f"pairs were re-run and {result['pairs']['kept_disturbed']} kept although still disturbed. "
                if "pairs" in result else "")
             + ("" if gpu else "On this shared machine the same work can take several times as long from one "
               "minute to the next, so a ratio of two multi-second runs is only good to several per cent; where "
               "a target needs better precision, the part of the work that differs is also timed on its own, "
               "with many short pairs."), ""]
    if not gpu:
        lines += ["> **No GPU was available in this session**: every figure below is CPU. Part 4 (the bf16 tables "
                  "on a GPU, training images/s and model FLOP utilisation for ViT-S and ViT-B) was **not measured**; "
                  "run `python benchmarks/speed.py --device cuda` on a GPU to produce it.", ""]

    # 1
    if result["backbone"]:
        rounds = plan["backbone_rounds"]
        lines += ["## 1. Backbone vs timm (same weights)", "",
                  f"m2dino's `DINOv3Backbone` (timm's modules, our block loop) against timm's `forward_features` "
                  f"with the same weights (outputs identical: max abs difference shown). Training step = forward + "
                  f"backward of the mean token + AdamW step. Target ≤ 1.05.", "",
                  f"**Whole backbone** ({rounds[0]} forward pairs, {rounds[1]} training-step pairs):", "",
                  "| size | precision | forward: m2dino / timm | train step: m2dino / timm | timm forward (s) | "
                  "timm train step (s) | train img/s | GFLOP/s (train) | max abs diff | load average |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in result["backbone"]:
            f, t = r["whole"]["forward"], r["whole"]["train"]
            t_train = median(t["reference_s"])
            lines.append(f"| {r['size']} | {r['precision']} | {fmt_ratio(f['ratio'])} | {fmt_ratio(t['ratio'])} | "
                         f"{median(f['reference_s']):.2f} | {t_train:.2f} | {batch / t_train:.2f} | "
                         f"{r['flops']['train'] / t_train / 1e9:.0f} | {r['max_abs_diff_fp32']:.1g} | "
                         f"{r.get('load', float('nan')):.1f} |")
        lines += ["", f"**The parts that differ, timed apart** ({plan['glue_rounds']} pairs each). The blocks are "
                  "the same modules on both sides; what differs is (a) the code around them — input check, patch "
                  "embedding, prefix tokens, RoPE table, final norm — timed on copies with no blocks on the real "
                  "input, and (b) our Python block loop against timm's, timed with all blocks on a one-patch image "
                  "(compute negligible; 1 thread on CPU, as Python overhead does not depend on it and tiny ops "
                  "on 2 threads measure the scheduler). m2dino − timm, in ms per call; the implied whole-backbone ratio is "
                  "(timm + Δa + Δb) / timm with timm's whole-backbone time from the table above:", "",
                  "| size | precision | step | Δ (a) no blocks, ms | Δ (b) block loop, ms | implied ratio | "
                  "target ≤ 1.05 |", "|---|---|---|---|---|---|---|"]
        for r in result["backbone"]:
            for step in ("forward", "train"):
                implied = r["implied"][step]
                lines.append(f"| {r['size']} | {r['precision']} | {step} | {fmt_ms(r['glue'][step]['difference_s'])} | "
                             f"{fmt_ms(r['loop'][step]['difference_s'])} | {implied:.4f} | {mark(implied <= 1.05)} |")
        lines.append("")

    # 2
    if result["moe_block"] or result["moe_model"]:
        rounds = plan["block_rounds"]
        lines += ["## 2. MoE overhead (task routing) against the dense model", "",
                  "**Per block** — the only place where the MoE model and the dense model differ. One dense block "
                  "against the same block with its MLP upcycled to a `TaskMoE` (E experts, top-k; outputs equal to "
                  "the dense block's at initialisation), on the same hidden states; forward, and training step "
                  f"(loss = mean of the outputs + {BALANCE_WEIGHT} × balancing loss, backward down to the block "
                  f"input, AdamW step). Single = {batch} images of one task (the fast path: the task's k experts "
                  f"run on the whole batch); mixed = {batch} images of {plan['mixed_tasks']} tasks, chosen to use "
                  "as many distinct experts as possible (the worst case for the grouped dispatch). The whole-model "
                  "columns follow from the block ratio r as 1 + (n / L)·(r − 1) for MoE in the last 4 blocks "
                  "(n = 4), every other block (n = 6: blocks 1, 3, …, 11) and all blocks (n = 12); an upper bound, "
                  "as the embedding, final norm and loss count as zero. The A/A row times a second, identical dense "
                  f"model the same way (full-grid cells only): the noise floor. {rounds[0]} forward pairs, {rounds[1]} training-step pairs "
                  "per row. Target for k = 1: ≤ 1.10.", ""]
        for cell in result["moe_block"]:
            depth = cell["depth"]
            one = cell.get("threads") == 1
            title = (f"### Per block, {cell['size']}×{cell['size']}, {cell['precision']} (load average "
                     f"{cell.get('load', float('nan')):.1f})")
            if one:
                title += (" — diagnostic: 1 thread (the work alone; with 2 threads on a loaded 2-core machine every "
                          "op also waits for both threads to be scheduled, which penalises the MoE's extra small ops)")
            lines += [title, "",
                      "| E | k | batch | experts run | step | block ratio | model: last 4 | model: every other "
                      "| model: all |", "|---|---|---|---|---|---|---|---|---|"]
            for step in ("forward", "train") if cell["control"] else ():
                lines.append(f"| — | — | A/A: dense vs dense | — | {step} | {fmt_ratio(cell['control'][step]['ratio'])} "
                             "| | | |")
            for c in cell["cells"]:
                for step in ("forward", "train"):
                    r = c[step]["ratio"]["median"]
                    preds = [predicted_model_ratio(r, len(placement_blocks(p, depth)), depth) for p in PLACEMENTS]
                    cols = [f"{p:.3f}" + (f" {mark(p <= 1.10)}" if c["top_k"] == 1 else "") for p in preds]
                    lines.append(f"| {c['experts']} | {c['top_k']} | {c['batch']} | {c['distinct_experts']:g} | "
                                 f"{step} | {fmt_ratio(c[step]['ratio'])} | " + " | ".join(cols) + " |")
            lines.append("")
        if result["moe_model"]:
            rounds = plan["model_rounds"]
            lines += ["### Whole backbone, measured directly", "",
                      f"Embedding + {result['moe_model'][0]['depth']} blocks + norm, the MoE model against the dense "
                      f"model ({rounds[0]} forward pairs, {rounds[1]} training-step pairs; multi-second calls, so "
                      "only good to the machine's noise; load average at the end "
                      f"{result['moe_model'][0].get('load', float('nan')):.1f}), next to the prediction from the "
                      "per-block table:", "",
                      "| size | precision | E | k | MoE blocks | batch | experts run / MoE block | forward: measured "
                      "| forward: predicted | train step: measured | train step: predicted |",
                      "|---|---|---|---|---|---|---|---|---|---|---|"]
            blocks = {(c["size"], c["precision"]): c for c in result["moe_block"] if c.get("threads") != 1}
            for cell in result["moe_model"]:
                for c in cell["cells"]:
                    cols = []
                    for step in ("forward", "train"):
                        pred = "—"
                        match = [b for b in blocks.get((cell["size"], cell["precision"]), {"cells": []})["cells"]
                                 if (b["experts"], b["top_k"], b["batch"]) == (c["experts"], c["top_k"], c["batch"])]
                        if match:
                            pred = (f"{predicted_model_ratio(match[0][step]['ratio']['median'], len(c['moe_blocks']), cell['depth']):.3f}")
                        ok = f" {mark(c[step]['ratio']['median'] <= 1.10)}" if c["top_k"] == 1 else ""
                        cols += [fmt_ratio(c[step]["ratio"]) + ok, pred]
                    lines.append(f"| {cell['size']} | {cell['precision']} | {c['experts']} | {c['top_k']} | "
                                 f"{c['placement']} | {c['batch']} | {c['distinct_experts']:.1f} | " + " | ".join(cols)
                                 + " |")
            lines.append("")

    # 3
    if result["all_tasks"]:
        a0 = result["all_tasks"][0]
        moe = a0["moe"]
        lines += ["## 3. All tasks at once (`predict_all`) against one task", "",
                  f"One image; MoE E = {moe['experts']}, k = {moe['top_k']} in blocks {moe['moe_blocks']}, so "
                  f"L_shared = {a0['shared_blocks']} dense blocks run once and L_routed = "
                  f"{a0['depth'] - a0['shared_blocks']} blocks run on one copy of the hidden state per task; heads "
                  f"with decoder_features = {plan['decoder_features']}. `all` = `M2DINO._forward_all(x, all "
                  f"{a0['tasks']} tasks)` (what `predict_all` runs after loading the image); `one` = "
                  f"`model(x, task='{a0['single_task']}')` (a segmentation head, DPT decoder). The backbone "
                  "(with the 4 feature levels the dense heads read) and the heads (on precomputed features) are "
                  "also timed apart, each against one task's backbone timed next to it (all figures of the parts "
                  "are in units of one task's backbone). Bound for the backbone = (L_shared + 27·L_routed) / L = "
                  f"{a0['bound_blocks']:.2f}× one task's backbone; bound for the whole = (that + all heads) / (1 + "
                  f"one head). Target: within 10 % of the bound. {plan['all_rounds']} pairs for the whole, "
                  f"{plan['all_parts_rounds']} rounds for the parts.", "",
                  "| size | precision | part | one task (s) | all tasks (s) | all / one task's backbone | bound | "
                  "measured / bound |", "|---|---|---|---|---|---|---|---|"]
        for r in result["all_tasks"]:
            s = r["seconds"]
            p = r["parts"]
            lines.append(f"| {r['size']} | {r['precision']} | backbone | {s['single_backbone']:.3f} | "
                         f"{s['all_backbone']:.3f} | {fmt_ratio(p['all_backbone']['ratio'])} | {r['bound_blocks']:.2f} | "
                         f"{r['backbone_vs_bound']:.3f} {mark(r['backbone_vs_bound'] <= 1.10)} |")
            lines.append(f"| {r['size']} | {r['precision']} | heads | {s['single_head']:.3f} | {s['all_heads']:.3f} | "
                         f"one: {fmt_ratio(p['single_head']['ratio'])}; all: {fmt_ratio(p['all_heads']['ratio'])} "
                         "| — | — |")
            lines.append(f"| {r['size']} | {r['precision']} | **whole** | {s['single']:.3f} | {s['all']:.3f} | "
                         f"all / one task: {fmt_ratio(r['whole']['ratio'])} | {r['full_bound']:.2f} | "
                         f"{r['full_vs_bound']:.3f} {mark(r['full_vs_bound'] <= 1.10)} |")
        lines += ["", "| size | precision | heads' share, all tasks | head's share, one task | 27 separate "
                  "single-task calls, estimated (s) | all tasks (s) | outputs = single-task forwards (max abs diff) "
                  "| load average |", "|---|---|---|---|---|---|---|---|"]
        for r in result["all_tasks"]:
            lines.append(f"| {r['size']} | {r['precision']} | {100 * r['heads_share_all']:.0f} % | "
                         f"{100 * r['head_share_single']:.0f} % | {r['naive_singles_estimate']:.2f} | "
                         f"{r['seconds']['all']:.2f} | {r['max_abs_diff_all_vs_single']:.1g} "
                         f"({', '.join(r['checked_tasks'])}) | {r.get('load', float('nan')):.1f} |")
        lines.append("")

    # 4
    lines += ["## 4. GPU: training throughput and model FLOP utilisation", ""]
    if result["throughput"]:
        lines += [f"Training step (forward + backward + AdamW, bf16 autocast) of the backbone at "
                  f"{plan['throughput_size']}×{plan['throughput_size']}, batch {plan['throughput_batch']}; FLOPs of "
                  f"forward + backward counted by `FlopCounterMode` (matmuls, convolutions, attention); peak "
                  f"{result['peak']}.", "",
                  "| backbone | variant | images/s | TFLOP/s | MFU | MoE / dense time |", "|---|---|---|---|---|---|"]
        for r in result["throughput"]:
            mfu = f"{100 * r['mfu']:.1f} %" if r["mfu"] is not None else "—"
            rel = fmt_ratio(r["moe_over_dense"]) if r["variant"] != "dense" else "—"
            lines.append(f"| {r['backbone']} | {r['variant']} | {r['images_per_s']:.0f} | {r['tflops_per_s']:.1f} | "
                         f"{mfu} | {rel} |")
        lines.append("")
    else:
        lines += ["Not measured: no GPU was lent to this session (the `device` tool offered none). The script "
                  "has the GPU path — `--device cuda`: the tables above in bf16 (20 calls per timed sample on a "
                  "CUDA-synchronised clock, the full E × k × placement grid also on the whole backbone), then "
                  "images/s and MFU of ViT-S and ViT-B training steps — to be run when a GPU is available.", ""]
    lines += ["## Targets", "", *targets(result), ""]
    if result.get("interpretation"):
        lines += ["## Interpretation", "", result["interpretation"], ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------- main
def run(plan: Plan, args) -> dict:
    device = torch.device(plan.device)
    started = time.perf_counter()
    result = {"command": "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *sys.argv[1:]]),
              "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "machine": machine_info(device, torch.get_num_threads()), "load_start": os.getloadavg()[0],
              "plan": asdict(plan), "backbone": [], "moe_block": [], "moe_model": [], "all_tasks": [],
              "throughput": [], "peak": None}

    def log(text: str) -> None:
        print(f"[{(time.perf_counter() - started) / 60:5.1f} min] {text}", flush=True)

    parts = set(args.parts)
    if "backbone" in parts:
        for precision in plan.precisions:
            for size in plan.sizes:
                r = bench_backbone(plan, size, precision)
                result["backbone"].append(r)
                log(f"backbone {size} {precision}: whole fwd {fmt_ratio(r['whole']['forward']['ratio'])}, "
                    f"train {fmt_ratio(r['whole']['train']['ratio'])}; implied fwd {r['implied']['forward']:.4f}, "
                    f"train {r['implied']['train']:.4f}")
    if "moe" in parts:
        for precision in plan.precisions:
            for size in plan.sizes:
                full = (size, precision) in plan.block_full_cells
                r = bench_moe_block(plan, size, precision, plan.block_grid if full else plan.block_subset, full)
                result["moe_block"].append(r)
                aa = (f"A/A fwd {r['control']['forward']['ratio']['median']:.3f} "
                      f"train {r['control']['train']['ratio']['median']:.3f}; ") if r["control"] else ""
                log(f"MoE block {size} {precision}: {aa}" + ", ".join(
                        f"E{c['experts']}k{c['top_k']}/{c['batch']} fwd {c['forward']['ratio']['median']:.3f} "
                        f"train {c['train']['ratio']['median']:.3f}" for c in r["cells"]))
        threads = torch.get_num_threads()
        for size, precision in plan.block_one_thread_cells:
            torch.set_num_threads(1)
            try:
                r = bench_moe_block(plan, size, precision, plan.block_one_thread_grid, True)
            finally:
                torch.set_num_threads(threads)
            r["threads"] = 1
            result["moe_block"].append(r)
            log(f"MoE block {size} {precision}, 1 thread: A/A fwd {r['control']['forward']['ratio']['median']:.3f} "
                f"train {r['control']['train']['ratio']['median']:.3f}; " + ", ".join(
                    f"E{c['experts']}k{c['top_k']}/{c['batch']} fwd {c['forward']['ratio']['median']:.3f} "
                    f"train {c['train']['ratio']['median']:.3f}" for c in r["cells"]))
        for size, precision in plan.model_cells:
            grid = plan.model_grid if (size, precision) in plan.model_full_cells else plan.model_subset
            r = bench_moe_model(plan, size, precision, grid)
            result["moe_model"].append(r)
            log(f"MoE model {size} {precision}: " + ", ".join(
                f"E{c['experts']}k{c['top_k']}/{c['placement']}/{c['batch']} fwd {c['forward']['ratio']['median']:.3f} "
                f"train {c['train']['ratio']['median']:.3f}" for c in r["cells"]))
    if "all" in parts:
        for size, precision in plan.all_cells:
            r = bench_all_tasks(plan, size, precision)
            result["all_tasks"].append(r)
            log(f"all tasks {size} {precision}: backbone {r['relative']['all_backbone']:.2f} (bound "
                f"{r['bound_blocks']:.2f}), whole {r['whole']['ratio']['median']:.2f} (bound {r['full_bound']:.2f}), "
                f"heads {100 * r['heads_share_all']:.0f} % of all")
    if "throughput" in parts and plan.throughput:
        peak, peak_text = peak_flops(device, args.peak_tflops)
        result["peak"] = peak_text
        result["throughput"] = bench_throughput(plan, peak)
        for r in result["throughput"]:
            log(f"throughput {r['backbone']} {r['variant']}: {r['images_per_s']:.0f} img/s, "
                f"{r['tflops_per_s']:.1f} TFLOP/s")
    result["pairs"] = dict(PAIR_STATS, limit=INTERFERENCE_LIMIT, retries=RETRIES)
    result["load_end"] = os.getloadavg()[0]
    result["wall_s"] = time.perf_counter() - started
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (CPU)")
    parser.add_argument("--quick", action="store_true", help="a ~2 min smoke run: fewer cells and rounds")
    parser.add_argument("--parts", nargs="+", default=["backbone", "moe", "all", "throughput"],
                        choices=("backbone", "moe", "all", "throughput"))
    parser.add_argument("--throughput", action="store_true",
                        help="run part 4 (throughput/MFU) also on CPU (tiny batch; to test the code path)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="accelerator bf16 peak, for MFU")
    parser.add_argument("--interpretation", type=Path, default=None,
                        help="a markdown file whose text becomes the report's interpretation section")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="default: benchmarks/results (a --quick run: a temporary folder, so that the "
                             "committed results are not overwritten)")
    parser.add_argument("--name", default=NAME, help="output file stem (results/<name>.md and .json)")
    parser.add_argument("--rerender", action="store_true", help="rewrite the .md from the existing .json")
    args = parser.parse_args()

    if args.out_dir is None:
        args.out_dir = Path(tempfile.gettempdir()) / "m2dino_speed_quick" if args.quick else RESULTS
    md_path, json_path = args.out_dir / f"{args.name}.md", args.out_dir / f"{args.name}.json"
    if args.rerender:
        result = json.loads(json_path.read_text())
    else:
        torch.set_num_threads(args.threads)
        if args.device == "cuda" and not torch.cuda.is_available():
            parser.error("--device cuda: no CUDA device is available")
        plan = default_plan(args.device, args.quick)
        if args.throughput and args.device == "cpu":
            plan.throughput, plan.throughput_batch, plan.throughput_rounds = True, 2, 1
            plan.throughput_backbones = ("vit_test_patch16_dinov3",)
        result = run(plan, args)
    if args.interpretation is not None:
        result["interpretation"] = args.interpretation.read_text().strip()
    report = markdown(result)
    print(report)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    md_path.write_text(report)
    json_path.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
