"""1. m2dino's `DINOv3Backbone` (no MoE) against timm's model with the same weights: the whole backbone,
then the parts that differ timed precisely on short calls."""

from __future__ import annotations

import copy
import os
import statistics

import timm
import torch

from harness.timing import PairedTimer
from m2dino.models import DINOv3Backbone, resolve_backbone

from .plan import Plan
from .steps import count_flops, forward_fn, token_loss, train_fn


def without_blocks(model: torch.nn.Module) -> torch.nn.Module:
    """A copy with no transformer blocks: what is left is the part of the forward that differs between
    m2dino and timm (input check, embedding, prefix tokens, RoPE table, final norm)."""
    blocks = model.blocks
    model.blocks = torch.nn.ModuleList()
    try:
        return copy.deepcopy(model)
    finally:
        model.blocks = blocks


def compare(timer: PairedTimer, ours: torch.nn.Module, reference: torch.nn.Module, x: torch.Tensor,
            device: torch.device, precision: str, rounds: tuple[int, int]) -> dict:
    """Forward and training step of m2dino's backbone against timm's, paired."""
    fwd = timer.compare(forward_fn(lambda: reference.forward_features(x), device, precision),
                        {"m2dino": forward_fn(lambda: ours(x), device, precision)}, rounds[0])
    train = timer.compare(train_fn(lambda: token_loss(reference.forward_features(x)), reference.parameters(),
                                   device, precision),
                          {"m2dino": train_fn(lambda: token_loss(ours(x)), ours.parameters(), device, precision)},
                          rounds[1])
    return {"forward": fwd["m2dino"], "train": train["m2dino"]}


def bench_backbone(plan: Plan, timer: PairedTimer, size: int, precision: str) -> dict:
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
    whole = compare(timer, ours, reference, x, device, precision, plan.backbone_rounds)
    glue_rounds = (plan.glue_rounds, plan.glue_rounds)
    # The parts that differ, timed precisely on short calls: (a) no blocks, the real input; (b) all blocks on a
    # one-patch image (the per-block Python of our loop against timm's, compute negligible).
    glue = compare(timer, without_blocks(ours), without_blocks(reference), x, device, precision, glue_rounds)
    tiny = torch.randn(1, 3, ours.patch_size, ours.patch_size, device=device)
    threads = torch.get_num_threads()
    if device.type == "cpu":
        # Python overhead does not depend on the thread count, and with 2 threads each tiny op waits for both
        # threads to be scheduled, which on a loaded machine is milliseconds of noise per op.
        torch.set_num_threads(1)
    try:
        loop = compare(timer, ours, reference, tiny, device, precision, glue_rounds)
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
                         / statistics.median(whole[step]["reference_s"]) for step in ("forward", "train")}
    return result
