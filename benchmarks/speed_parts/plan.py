"""What one speed run measures, and the default plans (CPU, GPU, --quick)."""

from __future__ import annotations

from dataclasses import dataclass

PLACEMENTS = ("last4", "alternate", "all")
BALANCE_WEIGHT = 0.01  # MoE balancing loss weight in the timed training steps


def placement_blocks(placement: str, depth: int) -> tuple[int, ...]:
    """MoE block indices: the last 4 blocks, every other block (1, 3, …, odd ones), or all blocks."""
    if placement == "last4":
        return tuple(range(depth - 4, depth))
    if placement == "alternate":
        return tuple(range(1, depth, 2))
    if placement == "all":
        return tuple(range(depth))
    raise ValueError(f"unknown placement {placement!r}; expected one of {PLACEMENTS}")


def predicted_model_ratio(block_ratio: float, moe_blocks: int, depth: int) -> float:
    """Whole-backbone ratio from the block ratio, taking the backbone as L equal blocks (embedding, final
    norm and loss make it slightly longer, so the true overhead is slightly smaller: an upper bound)."""
    return 1 + moe_blocks / depth * (block_ratio - 1)


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
    # whole-backbone cells that also time a second, identical dense model (A/A control: the noise floor)
    model_control_cells: tuple[tuple[int, str], ...] = ((224, "fp32"),)
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
                    model_full_cells=bf16, model_cells=bf16, model_control_cells=bf16[:1], all_rounds=7,
                    all_parts_rounds=7, all_cells=bf16, throughput=True)
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


def cpu_throughput_smoke(plan: Plan) -> None:
    """Part 4 on CPU, only to exercise its code path: a tiny backbone, batch 2, one round."""
    plan.throughput, plan.throughput_batch, plan.throughput_rounds = True, 2, 1
    plan.throughput_backbones = ("vit_test_patch16_dinov3",)
