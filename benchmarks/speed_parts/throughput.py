"""4. Training throughput (images/s) and model FLOP utilisation of the backbone, dense and MoE (GPU)."""

from __future__ import annotations

import statistics

import torch

from harness.timing import PairedTimer
from m2dino.models import DINOv3Backbone

from .model_api import routing
from .models import make_model
from .plan import Plan, placement_blocks
from .steps import autocast, count_flops, token_loss, train_fn

# Dense bf16 tensor-core peaks (no sparsity), for MFU; override with --peak-tflops.
PEAK_BF16_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.4, "H200": 989.4, "GH200": 989.4, "B200": 2250.0,
                    "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0}
MOE = "MoE E8 k1 last4"


def peak_flops(device: torch.device, override: float | None) -> tuple[float | None, str]:
    """(peak FLOP/s, how it was found): given, looked up by GPU name (longest matching key), or unknown."""
    if override:
        return override * 1e12, f"{override} TFLOPS (given)"
    if device.type != "cuda":
        return None, "unknown (CPU)"
    name = torch.cuda.get_device_name(device)
    for key in sorted(PEAK_BF16_TFLOPS, key=len, reverse=True):
        if all(part in name for part in key.split()):
            return PEAK_BF16_TFLOPS[key] * 1e12, f"{PEAK_BF16_TFLOPS[key]} TFLOPS bf16 dense ({key})"
    return None, f"unknown for {name}; pass --peak-tflops"


def bench_throughput(plan: Plan, timer: PairedTimer, peak: float | None) -> list[dict]:
    """Training step (fwd + bwd + AdamW, bf16 autocast) of the backbone, dense and with MoE E8 k1 last4."""
    device = torch.device(plan.device)
    size, batch = plan.throughput_size, plan.throughput_batch
    rows = []
    for name in plan.throughput_backbones:
        x = torch.randn(batch, 3, size, size, device=device)
        steps, flops = {}, {}
        depth = DINOv3Backbone(name).depth
        for label, placement in (("dense", None), (MOE, "last4")):
            model = make_model(plan, size, placement_blocks(placement, depth) if placement else (), 8, 1,
                               backbone=name)
            tasks = [plan.single_task] * batch if placement else None

            def loss(m=model, t=tasks, x=x) -> torch.Tensor:
                out = m.backbone.forward_features(x, routing(m, t) if t else None)
                return token_loss(out.tokens, out.aux_loss)
            with autocast(device, "bf16"):
                flops[label] = count_flops(lambda: loss().backward())
            model.zero_grad(set_to_none=True)
            steps[label] = train_fn(loss, [*model.backbone.parameters(), *model.task_embedding.parameters()],
                                    device, "bf16")
        # a big-batch training step is long already: fewer calls per timed sample than the other parts
        times = timer.compare(steps["dense"], {MOE: steps[MOE]}, plan.throughput_rounds,
                              inner=max(1, plan.inner // 4))[MOE]
        for label, seconds in (("dense", times["reference_s"]), (MOE, times["variant_s"])):
            t = statistics.median(seconds)
            rows.append({"backbone": name, "variant": label, "batch": batch, "size": size, "seconds": seconds,
                         "images_per_s": batch / t, "flops_per_step": flops[label],
                         "tflops_per_s": flops[label] / t / 1e12, "mfu": flops[label] / t / peak if peak else None,
                         "moe_over_dense": times["ratio"]})
        del steps
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows
