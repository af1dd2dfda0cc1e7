import copy

import pytest
import torch

from m2dino import M2DINO
from m2dino.models import TaskMoE

from .helpers import assert_outputs_equal, tiny_config, tiny_model


def _backbone_tokens(model, x, tasks):
    routing = model.routing(tasks) if model.moe_blocks else None
    return model.backbone.forward_features(x, routing).tokens


@pytest.mark.parametrize("routing, top_k", [("task", 1), ("task", 2), ("task+token", 2)])
def test_upcycled_model_equals_the_dense_backbone_at_initialisation(routing, top_k):
    torch.manual_seed(0)
    dense = M2DINO(tiny_config(moe_blocks=())).eval()
    torch.manual_seed(0)
    moe = M2DINO(tiny_config(routing=routing, top_k=top_k)).eval()
    assert moe.moe_blocks == (2, 3) and isinstance(moe.backbone.blocks[2].mlp, TaskMoE)
    x = torch.randn(3, 3, 32, 48)
    with torch.no_grad():
        reference = _backbone_tokens(dense, x, ["fetal_head"] * 3)
        for tasks in (["fetal_head"] * 3, ["IUGC", "fetal_head", "fetal_plane_cls"]):
            torch.testing.assert_close(_backbone_tokens(moe, x, tasks), reference, atol=1e-5, rtol=0)


def _train_two_tasks(model, steps=6):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    torch.manual_seed(1)
    x = torch.randn(4, 3, 32, 48)
    for step in range(steps):
        task = ["fetal_plane_cls", "IUGC"][step % 2]
        out = model(x, task=task)
        targets = torch.tensor([0, 1, 2, 3]) if task == "fetal_plane_cls" else torch.rand(4, 3, 2) * 32
        optimizer.zero_grad()
        model.loss(out, targets).backward()
        optimizer.step()


@pytest.mark.parametrize("top_k", [1, 2])
def test_experts_and_routes_diverge_after_a_few_steps_on_two_tasks(top_k):
    model = tiny_model(top_k=top_k, num_experts=4).train()
    with torch.no_grad():  # layer scale as in a trained DINOv3 (random init uses 1e-5, hiding the MLPs)
        for block in model.backbone.blocks:
            block.gamma_1.fill_(1.0)
            block.gamma_2.fill_(1.0)
    model.config.balance_loss_weight = 0.0  # the task loss alone must move the router
    moe = model.backbone.blocks[3].mlp
    router_before = moe.router.task_proj.weight.detach().clone()
    routes_before = model.routing_table()
    experts = moe.experts
    assert all(torch.equal(experts[0].fc1.weight, experts[e].fc1.weight) for e in range(4))
    _train_two_tasks(model)
    # the router learned (it gets gradient even when all experts started identical)
    assert (moe.router.task_proj.weight - router_before).abs().max() > 1e-6
    weights = [experts[e].fc1.weight for e in range(4)]
    assert any(not torch.allclose(weights[0], w) for w in weights[1:]), "experts are still identical"
    table = model.routing_table()
    assert table["fetal_plane_cls"][3] != table["IUGC"][3] or table != routes_before
    if top_k == 2:
        assert table["IUGC"][3] != routes_before["IUGC"][3]  # weights moved


def test_usage_statistics_count_tokens_per_task_and_expert():
    model = tiny_model(num_experts=4, top_k=2)
    x = torch.randn(2, 3, 32, 48)
    with torch.no_grad():
        model(x, task="fetal_plane_cls")
    usage = model.expert_usage()[3]
    row = model.task_ids.index("fetal_plane_cls")
    chosen = {e for e, _ in model.routing_table()["fetal_plane_cls"][3]}
    assert set(torch.nonzero(usage[row]).flatten().tolist()) == chosen
    torch.testing.assert_close(usage[row].sum(), torch.tensor(1.0))
    assert usage.sum() == pytest.approx(1.0)  # no other task ran


@pytest.mark.parametrize("routing", ["task", "task+token"])
def test_mixed_task_batch_equals_task_by_task(routing):
    model = tiny_model(routing=routing, top_k=2)
    if routing == "task+token":  # token logits start at zero: give them weight so tokens really route
        for moe in model.moe_modules():
            torch.nn.init.normal_(moe.router.token_proj.weight, std=1.0)
    x = torch.randn(5, 3, 32, 48)
    tasks = ["fetal_head", "IUGC", "fetal_head", "fetal_plane_cls", "thyroid_nodule_det"]
    with torch.no_grad():
        mixed = model(x, task=tasks)
        for task in set(tasks):
            rows = [i for i, t in enumerate(tasks) if t == task]
            assert mixed.indices[task].tolist() == rows
            assert_outputs_equal(mixed[task], model(x[rows], task=task), atol=2e-5)


def test_balancing_loss_is_finite_differentiable_and_reported():
    model = tiny_model().train()
    out = model(torch.randn(2, 3, 32, 48), task="fetal_plane_cls")
    parts = model.loss(out, torch.tensor([0, 5]), return_parts=True)
    assert parts["balance_loss"] > 0 and torch.isfinite(parts["loss"])
    parts["loss"].backward()
    assert model.backbone.blocks[2].mlp.router.task_proj.weight.grad.abs().sum() > 0


def test_moe_config_errors():
    with pytest.raises(ValueError, match="top_k=5 must be in 1..num_experts=4"):
        tiny_config(top_k=5)
    with pytest.raises(ValueError, match="routing='tokens'"):
        tiny_config(routing="tokens")
    with pytest.raises(ValueError, match="MoE block 7 out of range for vit_test_patch16_dinov3 \\(4 blocks\\)"):
        M2DINO(tiny_config(moe_blocks=(7,)))


def test_task_surgery_keeps_other_tasks_unchanged():
    model = tiny_model()
    x = torch.randn(2, 3, 32, 48)
    with torch.no_grad():
        before = {t: model(x, task=t) for t in model.task_ids}
    grown = copy.deepcopy(model).add_task("cervix")
    assert grown.task_ids[-1] == "cervix" and grown.config.tasks[-1] == "cervix"
    with torch.no_grad():
        for task, out in before.items():
            assert_outputs_equal(grown(x, task=task), out)
        assert grown(x, task="cervix").logits.shape == (2, 2, 32, 48)
    with pytest.raises(ValueError, match="already one of this model's tasks"):
        grown.add_task("cervix")
