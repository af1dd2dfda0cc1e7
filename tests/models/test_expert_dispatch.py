"""Grouped MoE dispatch (`expert_dispatch`) against a hand-written reference: every expert module run on
every token and combined with the routing weights (zero where an expert was not chosen). Outputs and
gradients must agree for task routing (one task, mixed tasks) and token routing, top-1 and top-2, fp32
and bf16 autocast, each timm MLP type, LoRA-wrapped experts, and the per-group fallback; the forward
and backward must not read tensor values back to the host."""

import copy

import pytest
import torch
from timm.layers import GluMlp, Mlp, SwiGLU
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from m2dino import M2DINO
from m2dino.models import TaskMoE, TaskRouting
from m2dino.training.lora import apply_lora, merge_lora

from .helpers import assert_outputs_equal, tiny_model

DIM, TASK_DIM, EXPERTS, TASKS = 64, 16, 4, 5
MIXED = [0, 3, 1, 0, 4]  # sample → task row; the tasks choose different experts (checked below)


def every_expert(moe: TaskMoE, x: torch.Tensor, routing: TaskRouting) -> torch.Tensor:
    """The reference: each expert module on all of ``x``, weighted per token by its routing weight."""
    logits = moe.router.task_logits(routing.task_embedding)[:, None, :]
    logits = logits + moe.router.token_logits(x) if moe.mode == "task+token" else logits.expand(-1, x.shape[1], -1)
    top_index, weights, _ = moe.router.select(logits)                                     # B × N × k
    combine = torch.zeros(*top_index.shape[:-1], moe.num_experts).scatter(-1, top_index, weights)
    outputs = torch.stack([moe.experts[e](x) for e in range(moe.num_experts)], dim=-1)  # B × N × D × E
    return (outputs * combine[..., None, :]).sum(dim=-1)


def make_moe(mlp: nn.Module, top_k: int, mode: str, dim: int = DIM, seed: int = 0) -> TaskMoE:
    """A TaskMoE whose experts differ (upcycled copies would hide a wrong expert choice). Every weight is drawn
    from ``seed``: the parametrised MLPs are built at collection time, from whatever RNG state that has."""
    torch.manual_seed(seed)
    moe = TaskMoE(mlp, dim, TASK_DIM, EXPERTS, top_k, mode, num_tasks=TASKS)
    with torch.no_grad():
        for module in moe.experts.modules():
            if isinstance(module, nn.Linear):
                module.reset_parameters()
        for param in moe.experts.parameters():
            param.add_(torch.randn_like(param) * 0.3)
        nn.init.normal_(moe.router.task_proj.weight, std=1.0)  # tasks far apart: different experts
        if moe.router.token_proj is not None:
            nn.init.normal_(moe.router.token_proj.weight, std=1.0)
    return moe


def make_routing(table: torch.Tensor, tasks: list[int]) -> TaskRouting:
    index = torch.tensor(tasks)
    return TaskRouting(index, table[index], table, single_task=len(set(tasks)) == 1)


def inputs(tasks: list[int], dim: int = DIM, dtype=torch.float32, tokens: int = 7):
    """Hidden states, the task table and a random output gradient (the same for every test)."""
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(len(tasks), tokens, dim, generator=generator, dtype=dtype)
    table = torch.randn(TASKS, TASK_DIM, generator=generator)
    return x, table, torch.randn(x.shape, generator=generator)


def grouped(moe: TaskMoE, x: torch.Tensor, routing: TaskRouting) -> torch.Tensor:
    return moe(x, routing)[0]


def run(forward, moe: TaskMoE, tasks: list[int], dim: int = DIM, dtype=torch.float32, precision: str = "fp32"):
    """Output and every gradient (x, task table, MoE parameters) of ``forward`` on a copy of ``moe``."""
    x, table, probe = inputs(tasks, dim, dtype)
    module = copy.deepcopy(moe).to(dtype)
    x, table = x.requires_grad_(), table.requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        y = forward(module, x, make_routing(table, tasks))
    (y.float() * probe).sum().backward()
    # an expert no route chose gets a zero gradient from the grouped path and from the reference
    return {"output": y.detach().float(), "x": x.grad, "task table": table.grad,
            **{n: p.grad.float() for n, p in module.named_parameters()}}


def assert_same(got: dict, want: dict, atol: float = 5e-5, rtol: float = 1e-5) -> None:
    """Close within float rounding at each tensor's own scale: the two sides sum in different orders, and
    how far that moves a sum of large terms depends on the CPU's matmul kernels (a CI machine with other
    vector units than this one differed by 5e-5 on a gradient entry of 1.3 whose terms reach 100, and 7e-5 on
    the task table's gradient of scale 2.2). A wrong expert or weight moves entries by a sizeable fraction of
    the tensor's scale, far beyond this."""
    assert got.keys() == want.keys()
    for name, value in got.items():
        scaled_atol = atol * max(1.0, float(want[name].abs().max()))
        torch.testing.assert_close(value, want[name], atol=scaled_atol, rtol=rtol,
                                   msg=lambda m, name=name: f"{name}: {m}")


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).norm() / want.norm().clamp_min(1e-12))


@pytest.mark.parametrize("top_k", [1, 2])
@pytest.mark.parametrize("mode, tasks", [("task", [2] * 5), ("task", MIXED), ("task+token", MIXED)],
                         ids=["task-single", "task-mixed", "token"])
def test_grouped_dispatch_equals_every_expert(mode, tasks, top_k):
    moe = make_moe(Mlp(DIM, 2 * DIM), top_k, mode)
    assert_same(run(grouped, moe, tasks), run(every_expert, moe, tasks))


@pytest.mark.parametrize("top_k", [1, 2])
@pytest.mark.parametrize("mode, tasks", [("task", [2] * 5), ("task", MIXED), ("task+token", MIXED)],
                         ids=["task-single", "task-mixed", "token"])
def test_under_bf16_autocast_grouped_dispatch_is_as_close_to_fp32_as_the_modules(mode, tasks, top_k):
    """Both sides multiply in bf16 but round at different points (the bias fused into the matmul or added
    after it), so each is compared with the fp32 result: the grouped path's error (relative, per tensor) is
    at most twice the expert modules' own, plus 1 %."""
    moe = make_moe(Mlp(DIM, 2 * DIM), top_k, mode)
    exact = run(every_expert, moe, tasks)
    modules = run(every_expert, moe, tasks, precision="bf16")
    ours = run(grouped, moe, tasks, precision="bf16")
    for name, value in exact.items():
        error, reference_error = relative_error(ours[name], value), relative_error(modules[name], value)
        assert error <= 2 * reference_error + 0.01, f"{name}: {error:.4f} vs {reference_error:.4f}"


def test_the_mixed_batch_uses_several_expert_groups():
    """The mixed-task fixture must really send samples to different experts, or the tests above prove little."""
    moe = make_moe(Mlp(DIM, 2 * DIM), 2, "task")
    _, table, _ = inputs(MIXED)
    chosen = moe.task_routes(table[torch.tensor(MIXED)])[0]
    assert len(set(chosen[:, 0].tolist())) >= 2 and len(set(chosen.flatten().tolist())) >= 3


@pytest.mark.parametrize("mlp", [SwiGLU(DIM, 2 * DIM), GluMlp(DIM, 4 * DIM), GluMlp(DIM, 4 * DIM, gate_last=False)],
                         ids=["SwiGLU", "GluMlp", "GluMlp-gate-first"])
@pytest.mark.parametrize("mode, tasks", [("task", [1] * 5), ("task", MIXED), ("task+token", MIXED)],
                         ids=["task-single", "task-mixed", "token"])
def test_every_timm_mlp_type_dispatches_like_its_modules(mlp, mode, tasks):
    moe = make_moe(mlp, 2, mode)
    assert_same(run(grouped, moe, tasks), run(every_expert, moe, tasks))


@pytest.mark.parametrize("dtype, dim", [(torch.float64, DIM), (torch.float32, 6)], ids=["float64", "odd-width"])
def test_without_a_grouped_gemm_the_groups_run_one_by_one(dtype, dim):
    """torch's grouped GEMM takes neither float64 nor rows that are not a multiple of 16 bytes."""
    moe = make_moe(Mlp(dim, 10), 2, "task+token", dim=dim)
    tolerance = (1e-12, 1e-12) if dtype == torch.float64 else ()
    assert_same(run(grouped, moe, MIXED, dim, dtype), run(every_expert, moe, MIXED, dim, dtype), *tolerance)


@pytest.mark.slow  # about 15 s of tracing
def test_routed_experts_compile_in_fp32():
    """torch.compile's shape rule for grouped_mm takes bf16/fp16 only: fp32 under compile runs per group."""
    moe = make_moe(Mlp(DIM, 2 * DIM), 2, "task+token")
    compiled = torch.compile(grouped, backend="aot_eager")
    assert_same(run(compiled, moe, MIXED), run(every_expert, moe, MIXED))


# Operators that read a tensor's values back to the host (a GPU would wait there).
SYNCING = {"_local_scalar_dense", "nonzero", "bincount", "unique", "_unique", "_unique2", "unique_consecutive",
           "unique_dim", "masked_select", "item"}


class SyncSpy(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.syncs: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        bool_index = name == "index" and any(i is not None and i.dtype == torch.bool for i in args[1])
        unsized_repeat = name == "repeat_interleave" and (kwargs or {}).get("output_size") is None
        if name in SYNCING or bool_index or unsized_repeat:
            self.syncs.append(str(func))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("mode, tasks", [("task", [2] * 5), ("task", MIXED), ("task+token", MIXED)],
                         ids=["task-single", "task-mixed", "token"])
def test_forward_and_backward_never_wait_for_the_host(mode, tasks):
    moe = make_moe(Mlp(DIM, 2 * DIM), 2, mode)
    table = torch.randn(TASKS, TASK_DIM, requires_grad=True)
    x = torch.randn(len(tasks), 7, DIM, requires_grad=True)
    with SyncSpy() as spy:
        y, aux = moe(x, make_routing(table, tasks))
        (y.mean() + aux).backward()
    assert spy.syncs == []
    assert moe.usage_counts.sum() == len(tasks) * 7 * 2


def test_the_bundled_zoo_model_loads_and_its_moe_blocks_equal_their_expert_modules(monkeypatch):
    """Checkpoint compatibility: the shipped weights load into the same keys, and each MoE block's grouped
    dispatch computes what its expert modules compute one by one (what the per-expert loop ran)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = M2DINO.from_pretrained("m2dino-mini-ccby")
    assert model.moe_blocks and "backbone.blocks.3.mlp.experts.experts.0.fc1.weight" in model.state_dict()
    hidden = torch.randn(4, 69, model.backbone.embed_dim)
    with torch.no_grad():
        for tasks in ([model.task_ids[0]] * 4, model.task_ids[:4]):
            routing = model.routing(tasks)
            for moe in model.moe_modules():
                torch.testing.assert_close(moe(hidden, routing)[0], every_expert(moe, hidden, routing),
                                           atol=2e-5, rtol=1e-5)


def test_experts_must_be_a_timm_mlp_with_parameters_only_in_its_linears():
    with pytest.raises(ValueError, match="MoE experts must be a timm Mlp, SwiGLU or GluMlp; got Sequential"):
        TaskMoE(nn.Sequential(nn.Linear(DIM, DIM)), DIM, TASK_DIM, EXPERTS)
    with pytest.raises(ValueError, match=r"parameters outside its Linear layers \(norm.weight, norm.bias\)"):
        TaskMoE(Mlp(DIM, 2 * DIM, norm_layer=nn.LayerNorm), DIM, TASK_DIM, EXPERTS)


def _lora_model(routing: str):
    model = tiny_model(routing=routing, top_k=2)
    model.backbone.reset_layerscale(1.0)  # as in a trained DINOv3 (random init's 1e-5 hides the MLPs)
    for moe in model.moe_modules():  # give the experts and token logits something to tell apart
        with torch.no_grad():
            for param in moe.experts.parameters():
                param.add_(torch.randn_like(param) * 0.3)
            if moe.router.token_proj is not None:
                nn.init.normal_(moe.router.token_proj.weight, std=1.0)
    return model


@pytest.mark.parametrize("routing", ["task", "task+token"])
def test_lora_on_the_experts_trains_matches_peft_and_merges(routing):
    model = apply_lora(_lora_model(routing), rank=4)
    core = model.base_model.model
    assert "experts.experts.0.fc1.lora_A.default.weight" in dict(core.backbone.blocks[3].mlp.named_parameters())
    x = torch.randn(3, 3, 32, 48)
    tasks = ["fetal_head", "IUGC", "fetal_plane_cls"]
    with torch.no_grad():
        before = core(x, task="fetal_head").logits
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    for _ in range(3):
        out = core(x[:2], task="fetal_plane_cls")
        optimizer.zero_grad()
        core.loss(out, torch.tensor([0, 1])).backward()
        optimizer.step()
    lora_b = core.backbone.blocks[3].mlp.experts.experts
    assert any(e.fc2.lora_B["default"].weight.abs().sum() > 0 for e in lora_b), "the experts' LoRA did not train"
    core.eval()
    with torch.no_grad():
        assert (core(x, task="fetal_head").logits - before).abs().max() > 1e-4
        # the stacked experts include each adapter's delta: equal to peft's own Linear forward
        moe = core.backbone.blocks[3].mlp
        hidden = torch.randn(3, 7, 64)
        routing_ = core.routing(tasks)
        torch.testing.assert_close(moe(hidden, routing_)[0], every_expert(moe, hidden, routing_), atol=2e-5, rtol=0)
        lora_out = core(x, task=tasks)
        merged = merge_lora(model)(x, task=tasks)
        for task in tasks:
            assert_outputs_equal(merged[task], lora_out[task], atol=2e-5)


def test_lora_dropout_on_experts_is_refused_in_training_only():
    model = apply_lora(_lora_model("task"), rank=4, dropout=0.1)
    x = torch.randn(2, 3, 32, 48)
    with torch.no_grad():
        model.eval()
        model(x, task="fetal_head")
        model.train()
        with pytest.raises(ValueError, match="LoRA adapter 'default' on an MoE expert has dropout"):
            model(x, task="fetal_head")
