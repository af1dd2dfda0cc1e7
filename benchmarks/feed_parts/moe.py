"""MoE dispatch: the grouped dispatch against the loop it replaced, each against the dense model (issue 25,
item 4: MoE without a per-expert Python loop or host synchronisation).

One training step (forward, backward, AdamW) is timed three ways: the dense model (the reference), the
task-routed MoE model with today's grouped dispatch (``new``: routes sorted by expert, stacked expert
weights, one grouped matrix multiply) and the same MoE model with the previous dispatch (``old``: a
Python loop over the experts a batch chose, reading them back to the host; kept here only, as the
baseline). Two scopes: one MoE block on fixed hidden states (the last block, the only place the models
differ) and the whole M2DINO model (backbone, heads, a loss that touches every output plus the
balancing loss). Batches hold one task (``single``) or several tasks picked to use as many experts as
possible (``mixed``, the worst case for a dispatch).

Each step is timed paired and interleaved against the dense step (`harness.timing.PairedTimer`):
``old_vs_dense`` and ``new_vs_dense`` are medians of within-pair ratios; ``new_vs_old`` is the median of
the ratios of the two MoE steps measured in the same round. Before timing, the old and new models' outputs
are compared (``max_abs_diff_old_new``, fp32: float rounding only).
"""

from __future__ import annotations

import copy
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence

import torch

from harness.timing import PairedTimer
from m2dino import M2DINO, M2DINOConfig

SINGLE_TASK = "fetal_head"
MIXED_TASKS = 4
IMAGE_SIZES = {8: 224, 128: 128}   # batch → image size: batch 128 at 224 px takes too long on one CPU thread
CONFIGS = ((4, 1),)                 # (experts, top-k): the recipes' default; (8, 2) doubles the time
MOE_BLOCKS = (-2, -1)               # the recipes' default placement (the last two blocks)


def _loop_routes(self, x: torch.Tensor, top_index: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The previous dispatch of mixed routes: each chosen expert once, on the sources that chose it."""
    out = torch.zeros_like(x)
    for expert in top_index.unique().tolist():
        source, slot = (top_index == expert).nonzero(as_tuple=True)
        w = weights[source, slot].to(x.dtype)[:, None, None]
        out.index_add_(0, source, self.experts[expert](x[source]) * w)
    return out


def _loop_selected(self, x: torch.Tensor, chosen: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The previous single-task dispatch: the task's k experts, one after the other, on every token."""
    out = None
    for slot, expert in enumerate(chosen.tolist()):
        y = self.experts[expert](x) * weights[slot].to(x.dtype)
        out = y if out is None else out + y
    return out


def with_loop_dispatch(model: M2DINO) -> M2DINO:
    """A copy of ``model`` whose MoE blocks dispatch with the previous per-expert loop."""
    old = copy.deepcopy(model)
    for moe in old.moe_modules():
        kind = type(moe.experts)
        moe.experts.__class__ = type(f"Loop{kind.__name__}", (kind,),
                                     {"run_routes": _loop_routes, "run_selected": _loop_selected})
    return old


def _make_model(backbone: str, size: int, device: torch.device, experts: int = 4, top_k: int = 1,
                moe: bool = True) -> M2DINO:
    """Seeded: the dense and MoE models share their backbone and heads; the experts are upcycled copies."""
    torch.manual_seed(0)
    config = M2DINOConfig(backbone=backbone, moe_blocks=MOE_BLOCKS if moe else (), num_experts=experts,
                          top_k=top_k, image_size=size)
    return M2DINO(config).to(device).train()


def pick_mixed_tasks(model: M2DINO, count: int) -> tuple[list[str], float]:
    """``count`` tasks chosen greedily for the most distinct experts over the MoE blocks, and the mean
    number of distinct experts per block they use."""
    table = model.routing_table()

    def distinct(tasks: list[str]) -> int:
        return sum(len({e for t in tasks for e, _ in table[t][b]}) for b in model.moe_blocks)

    chosen: list[str] = []
    for _ in range(count):
        chosen.append(max((t for t in model.task_ids if t not in chosen), key=lambda t: distinct([*chosen, t])))
    return chosen, distinct(chosen) / len(model.moe_blocks)


def _output_loss(output, balance_weight: float) -> torch.Tensor:
    """Mean of every output tensor (+ the weighted balancing loss): a loss that reaches every head."""
    outputs = output.outputs.values() if hasattr(output, "outputs") else [output]
    loss = sum(v.float().mean() for o in outputs for k, v in vars(o).items() if torch.is_tensor(v) and k != "aux_loss")
    return loss if output.aux_loss is None else loss + balance_weight * output.aux_loss


def _train_step(loss_fn: Callable[[], torch.Tensor], params: Iterable[torch.nn.Parameter]) -> Callable[[], None]:
    optimizer = torch.optim.AdamW([p for p in params if p.requires_grad], lr=1e-6)

    def step() -> None:
        loss_fn().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def _model_step(model: M2DINO, pixels: torch.Tensor, tasks: list[str] | str) -> Callable[[], None]:
    return _train_step(lambda: _output_loss(model(pixels, task=tasks), model.config.balance_loss_weight),
                       model.parameters())


def _block_step(model: M2DINO, hidden: torch.Tensor, rope: torch.Tensor, tasks: list[str]) -> Callable[[], None]:
    """One block's step: the gradient reaches the block input, as inside the network."""
    block = model.backbone.depth - 1
    x = hidden.clone().requires_grad_()

    def loss() -> torch.Tensor:
        routing = model.routing(tasks) if model.moe_blocks else None
        out, aux = model.backbone.run_block(block, x, rope, routing)
        return out.float().mean() + (0 if aux is None else model.config.balance_loss_weight * aux)

    step = _train_step(loss, [*model.backbone.blocks[block].parameters(), *model.task_embedding.parameters()])

    def run() -> None:
        step()
        x.grad = None
    return run


def _max_diff(a, b) -> float:
    if torch.is_tensor(a):
        return float((a.float() - b.float()).abs().max())
    if isinstance(a, (tuple, list)):
        return max(_max_diff(x, y) for x, y in zip(a, b) if x is not None)
    outputs = a.outputs if hasattr(a, "outputs") else {"": a}
    other = b.outputs if hasattr(b, "outputs") else {"": b}
    return max(_max_diff(v, vars(other[t])[k]) for t, o in outputs.items() for k, v in vars(o).items()
               if torch.is_tensor(v))


def moe_ratios(batch_sizes: Sequence[int] = (8, 128), device: torch.device | str = "cpu", backbone: str = "mini",
               configs: Sequence[tuple[int, int]] = CONFIGS, image_sizes: Mapping[int, int] = IMAGE_SIZES,
               scopes: Sequence[str] = ("block", "model"), rounds: int = 3, warmup: int = 1,
               retries: int = 1) -> list[dict]:
    """One row per (batch size, experts and top-k, scope, single/mixed batch): the paired step-time
    ratios old/dense, new/dense and new/old, the three median times and the old/new output difference.
    A batch size missing from ``image_sizes`` runs at 224 px."""
    device = torch.device(device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else None
    rows = []
    for batch_size in batch_sizes:
        size = image_sizes.get(batch_size, 224)
        dense = _make_model(backbone, size, device, moe=False)
        pixels = torch.randn(batch_size, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
        with torch.no_grad():
            hidden, rope, _ = dense.backbone.embed(pixels)
        for experts, top_k in configs:
            new = _make_model(backbone, size, device, experts, top_k)
            old = with_loop_dispatch(new)
            mixed, distinct = pick_mixed_tasks(new, min(MIXED_TASKS, batch_size))
            for tasks_kind, tasks in (("single", [SINGLE_TASK] * batch_size),
                                      ("mixed", [mixed[i % len(mixed)] for i in range(batch_size)])):
                for scope in scopes:
                    if scope == "block":
                        steps = [_block_step(m, hidden, rope, tasks) for m in (dense, old, new)]
                        block = new.backbone.depth - 1
                        with torch.no_grad():
                            diff = _max_diff(*(m.backbone.run_block(block, hidden, rope, m.routing(tasks))[0]
                                               for m in (old, new)))
                    elif scope == "model":
                        steps = [_model_step(m, pixels, tasks) for m in (dense, old, new)]
                        with torch.no_grad():
                            diff = _max_diff(*(m(pixels, task=tasks) for m in (old, new)))
                    else:
                        raise ValueError(f"unknown scope {scope!r}; expected 'block' or 'model'")
                    timer = PairedTimer(inner=1, warmup=warmup, sync=sync, retries=retries)
                    measured = timer.compare(steps[0], {"old": steps[1], "new": steps[2]}, rounds)
                    rows.append(_row(measured, timer, scope=scope, batch_size=batch_size, image_size=size,
                                     backbone=backbone, experts=experts, top_k=top_k, moe_blocks=list(MOE_BLOCKS),
                                     tasks=tasks_kind, task_ids=sorted(set(tasks)),
                                     distinct_experts=distinct if tasks_kind == "mixed" else top_k,
                                     max_abs_diff_old_new=diff, device=str(device),
                                     threads=torch.get_num_threads(), rounds=rounds))
    return rows


def _row(measured: dict, timer: PairedTimer, **meta) -> dict:
    old, new = measured["old"], measured["new"]
    new_vs_old = [n / o for n, o in zip(new["variant_s"], old["variant_s"])]
    return {**meta,
            "old_vs_dense": old["ratio"]["median"], "old_vs_dense_range": [old["ratio"]["min"], old["ratio"]["max"]],
            "new_vs_dense": new["ratio"]["median"], "new_vs_dense_range": [new["ratio"]["min"], new["ratio"]["max"]],
            "new_vs_old": statistics.median(new_vs_old), "new_vs_old_range": [min(new_vs_old), max(new_vs_old)],
            "dense_seconds": statistics.median(old["reference_s"] + new["reference_s"]),
            "old_seconds": statistics.median(old["variant_s"]), "new_seconds": statistics.median(new["variant_s"]),
            "pairs": timer.record()}
