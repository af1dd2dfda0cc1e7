"""``--compile``: the training step compiled gives eager's losses, and where torch cannot compile, one
message and an eager step instead of a crash. Compiled with ``aot_eager`` (dynamo and AOTAutograd, no
C++ build): inductor's first compilation takes minutes on a small CPU; the benchmark times inductor."""

import pytest
import torch

from m2dino.training.step_compile import compile_step
from m2dino.training.trainer_loss import LossModule

from .test_engine import tiny_model

TASKS = ["fetal_head", "fetal_plane_cls"]


def batch(step: int) -> tuple[torch.Tensor, str, torch.Tensor]:
    generator = torch.Generator().manual_seed(step)
    task = TASKS[step % 2]
    targets = ((torch.rand(2, 32, 32, generator=generator) > 0.5).long() if task == "fetal_head"
               else torch.randint(0, 6, (2,), generator=generator))
    return torch.randn(2, 3, 32, 32, generator=generator), task, targets


def train_losses(steps: int, compile_with=None, say=print) -> list[float]:
    model = tiny_model(TASKS)
    module = LossModule(model, model, None)
    if compile_with is not None:
        compile_step(module, torch.device("cpu"), len(TASKS), backend=compile_with, say=say)
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3)
    losses = []
    for step in range(steps):
        loss = module(*batch(step))["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses


@pytest.mark.slow  # about 40 s of tracing on a busy 2-core CPU
def test_a_compiled_step_trains_to_the_same_losses_as_eager():
    torch._dynamo.reset()
    eager, compiled = train_losses(4), train_losses(4, compile_with="aot_eager")
    assert compiled == pytest.approx(eager, rel=1e-4, abs=1e-5)
    assert eager[2] != eager[0]  # the weights moved: the steps trained


def test_a_compiler_failure_at_the_first_step_says_why_once_and_trains_eager():
    torch._dynamo.reset()

    def broken_backend(graph, example_inputs):
        raise RuntimeError("no code generator here")

    said = []
    losses = train_losses(3, compile_with=broken_backend, say=said.append)
    assert losses == pytest.approx(train_losses(3), rel=1e-6)
    assert said == ["--compile: torch could not compile the training step (BackendCompilerFailed: RuntimeError: no "
                    "code generator here); training eager"]


def test_without_a_cpp_compiler_inductor_is_not_tried(monkeypatch):
    from torch._inductor import config

    monkeypatch.setattr(config.cpp, "cxx", ("no-such-c++-compiler",))
    model = tiny_model(TASKS)
    module = LossModule(model, model, None)
    said = []
    assert not compile_step(module, torch.device("cpu"), len(TASKS), say=said.append)
    assert said == ["--compile: inductor needs a C++ compiler on the CPU (No working C++ compiler found in "
                    "torch._inductor.config.cpp.cxx: ('no-such-c++-compiler',)); training eager"]
    assert "forward" not in vars(module)  # left eager, untouched


def test_the_trainer_compiles_its_step_when_asked(monkeypatch, tmp_path, capsys):
    from m2dino.training import Trainer, step_compile

    from .fake_data import fake_data
    from .test_engine import config

    # the wiring, not inductor's minutes: the trainer must ask, and report torch's answer
    monkeypatch.setattr(step_compile, "compile_unavailable", lambda device, backend="inductor": "not here")
    train, val = fake_data(tasks=TASKS)
    result = Trainer(tiny_model(TASKS), train, val, config(tmp_path, steps=2, compile=True), progress=False).train()
    assert result.steps_done == 2
    assert "--compile: not here; training eager" in capsys.readouterr().out
