"""3. All tasks at once (what `predict_all` runs) against one task, on one image: the whole model, and
the backbone and the heads apart, against the bound ``(L_shared + n · L_routed) / L``."""

from __future__ import annotations

import os
import statistics

import torch

from harness.timing import PairedTimer
from m2dino.models import DINOv3Backbone

from .model_api import forward_features, forward_features_all, forward_head, select_rows
from .models import make_model
from .plan import Plan, placement_blocks
from .steps import autocast, forward_fn


def output_tensors(output) -> list[torch.Tensor]:
    return [v for v in vars(output).values() if isinstance(v, torch.Tensor) and v.is_floating_point()]


def bench_all_tasks(plan: Plan, timer: PairedTimer, size: int, precision: str) -> dict:
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
        single_features = forward_features(model, x, task)
        all_features = forward_features_all(model, x, tasks)
        all_outputs = model.forward_all(x, tasks)
        checked = {type(model.heads[t]).__name__: t for t in reversed(tasks)}.values()  # one task per head type
        diffs = {t: max((u.float() - v.float()).abs().max().item() for u, v in
                        zip(output_tensors(all_outputs[t]), output_tensors(model(x, task=t)))) for t in checked}

    def run_heads() -> None:
        for i, t in enumerate(tasks):
            forward_head(model, t, select_rows(all_features, torch.tensor([i])), image_size)

    def f(fn):
        return forward_fn(fn, device, precision)

    whole = timer.compare(f(lambda: model(x, task=task)), {"all": f(lambda: model.forward_all(x, tasks))},
                          plan.all_rounds)["all"]
    # The parts, each as a ratio to one task's backbone timed next to it (robust to the machine's drift).
    parts = timer.compare(f(lambda: forward_features(model, x, task)),
                          {"all_backbone": f(lambda: forward_features_all(model, x, tasks)),
                           "single_head": f(lambda: forward_head(model, task, single_features, image_size)),
                           "all_heads": f(run_heads)}, plan.all_parts_rounds)
    n = len(tasks)
    bound_blocks = (shared_blocks + n * (depth - shared_blocks)) / depth
    rel = {name: parts[name]["ratio"]["median"] for name in parts}  # in units of one task's backbone
    full_bound = (bound_blocks + rel["all_heads"]) / (1 + rel["single_head"])
    median = statistics.median
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
            "all_call": "M2DINO.forward_all",  # the report names the call (older results: _forward_all)
            "load": os.getloadavg()[0]}
