"""`complete_optimizer_state`: what a sharded checkpoint gives the parameters no step has reached
(torch's sharded loader refuses a checkpoint without their state); training must not change."""

import copy

import torch
from torch import nn

from m2dino.training.checkpoint import complete_optimizer_state


def three_layers() -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 4))
    model[2].weight.requires_grad_(False)  # frozen: an optimizer never keeps state for it
    return model


def step(model: nn.Module, optimizer: torch.optim.Optimizer, layers: list[int], seed: int) -> None:
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(seed))
    loss = sum(model[i](x).square().mean() for i in layers)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def test_untouched_parameters_get_adamws_starting_state_and_training_is_unchanged():
    plain = three_layers()
    completed = copy.deepcopy(plain)
    optimizers = [torch.optim.AdamW(m.parameters(), lr=0.1, weight_decay=0.05) for m in (plain, completed)]
    for model, optimizer in zip((plain, completed), optimizers):
        step(model, optimizer, [0], seed=1)  # only the first layer has gradients yet
    complete_optimizer_state(optimizers[1])

    state = optimizers[1].state_dict()["state"]
    assert sorted(state) == [0, 1, 2, 3, 5]  # layer 2's bias too, not its frozen weight (index 4)
    untouched = optimizers[1].state[completed[1].weight]
    assert untouched["step"].item() == 0 and untouched["step"].dtype == torch.float32
    assert not untouched["exp_avg"].any() and not untouched["exp_avg_sq"].any()
    assert optimizers[1].state[completed[0].weight]["step"].item() == 1  # a reached parameter keeps its own
    assert completed[2].weight not in optimizers[1].state
    assert len(optimizers[0].state_dict()["state"]) == 2

    reloaded = torch.optim.AdamW(completed.parameters(), lr=0.1, weight_decay=0.05)
    reloaded.load_state_dict(optimizers[1].state_dict())  # what resume does with it
    for model, optimizer in ((plain, optimizers[0]), (completed, reloaded)):
        for seed in (2, 3):
            step(model, optimizer, [0, 1, 2], seed)
    for a, b in zip(plain.parameters(), completed.parameters()):
        assert torch.equal(a, b)


def test_other_optimizers_are_left_as_they_are():
    model = three_layers()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    step(model, optimizer, [0], seed=1)
    complete_optimizer_state(optimizer)
    assert len(optimizer.state_dict()["state"]) == 2
