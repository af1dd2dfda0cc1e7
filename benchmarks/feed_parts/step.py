"""Training step time: bf16 autocast against fp32 and a compiled step against an eager one (issue 25,
item 3: ``--mixed-precision bf16`` and ``--compile``).

One step is what the engine's loss module differentiates: the model's forward for one task, its loss
(task loss + MoE balancing), backward and an AdamW step, on a batch already on the device. The model
is the recipes' default MoE model (``moe_blocks`` the last two blocks, 4 experts, top-2) with one
segmentation task. Compiled means the step's forward under ``torch.compile`` (inductor), as
``--compile`` compiles the loss module's forward; its first calls (the compilation, minutes on a
small CPU) are the warm-up, not timed. Each variant is timed paired and interleaved against eager fp32
(`harness.timing.PairedTimer`): a figure is the median of the within-pair ratios, < 1 = faster.

On a CPU without native bf16 (neither AMX-BF16 nor AVX512-BF16) torch emulates bf16, and
``--mixed-precision bf16`` trains in fp32 instead (with a warning): the bf16 rows then say what the
warning avoids.
"""

from __future__ import annotations

import contextlib
import copy
import statistics
from collections.abc import Callable, Sequence

import torch
from torch import nn

from harness.timing import PairedTimer
from m2dino import M2DINO, M2DINOConfig

SHAPES = (("mini", 64, 8), ("S", 224, 4))  # backbone, image size, batch: a few minutes in all on a CPU
TASK = "fetal_head"
VARIANTS = (("bf16", False, "bf16"), ("compiled", True, "fp32"), ("compiled_bf16", True, "bf16"))


class _Step(nn.Module):
    """Forward + loss of one task, as `m2dino.training`'s loss module computes it."""

    def __init__(self, model: M2DINO) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.model.loss(self.model(pixels, task=TASK), targets)


def _train_step(model: M2DINO, compiled: bool, precision: str, batch: tuple[torch.Tensor, torch.Tensor]
                ) -> Callable[[], None]:
    step = _Step(model)
    forward = torch.compile(step.forward) if compiled else step.forward
    optimizer = torch.optim.AdamW(step.parameters(), lr=1e-6)
    device = batch[0].device
    cast = (torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16"
            else contextlib.nullcontext())

    def run() -> None:
        with cast:
            loss = forward(*batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return run


def step_ratios(device: torch.device | str = "cpu", shapes: Sequence[tuple[str, int, int]] = SHAPES,
                rounds: int = 5, warmup: int = 3) -> list[dict]:
    """Per shape and variant: the paired ratio (variant / eager fp32) of the time of one training step,
    with both sides' median seconds. ``warmup`` calls of each step before timing (compilation included)."""
    device = torch.device(device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else None
    rows = []
    for backbone, size, batch_size in shapes:
        torch.manual_seed(0)
        model = M2DINO(M2DINOConfig(backbone=backbone, tasks=[TASK], moe_blocks=(-2, -1), num_experts=4, top_k=2,
                                    image_size=size)).to(device).train()
        generator = torch.Generator().manual_seed(0)
        batch = (torch.randn(batch_size, 3, size, size, generator=generator).to(device),
                 (torch.rand(batch_size, size, size, generator=generator) > 0.5).long().to(device))
        reference = _train_step(copy.deepcopy(model), False, "fp32", batch)
        variants = {name: _train_step(copy.deepcopy(model), compiled, precision, batch)
                    for name, compiled, precision in VARIANTS}
        timer = PairedTimer(inner=1, warmup=warmup, sync=sync)
        measured = timer.compare(reference, variants, rounds)
        for name, compiled, precision in VARIANTS:
            result = measured[name]
            rows.append({"backbone": backbone, "image_size": size, "batch_size": batch_size, "variant": name,
                         "compiled": compiled, "precision": precision, "ratio": result["ratio"]["median"],
                         "ratio_range": [result["ratio"]["min"], result["ratio"]["max"]],
                         "variant_seconds": statistics.median(result["variant_s"]),
                         "reference_seconds": statistics.median(result["reference_s"]), "rounds": rounds,
                         "pairs": timer.record()})
        torch._dynamo.reset()  # the next shape compiles afresh, like a new run
    return rows
