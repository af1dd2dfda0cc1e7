"""``--compile``: the training step's module (`trainer_loss.LossModule`: model, heads and loss) under
torch.compile, or eager with one message saying why where torch cannot compile.

The module's ``forward`` is replaced on the instance, so its parameters, state_dict and checkpoints stay
those of the eager module, and DDP/accelerate wrap it as before. The task is a string argument: torch
compiles one graph per task (the first step of each task is slow), and the MoE's expert choice breaks
the graph where it is read on the host.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext

import torch
from torch import nn


def compile_unavailable(device: torch.device, backend: str | Callable = "inductor") -> str | None:
    """Why torch cannot compile for ``device`` here (checked before any tracing), or None."""
    if not torch._dynamo.is_dynamo_supported():
        return "torch.compile does not support this Python or platform"
    if backend != "inductor":
        return None
    if device.type == "cpu":
        from torch._inductor import cpp_builder, exc
        try:
            cpp_builder.get_cpp_compiler()
        except (exc.InvalidCxxCompiler, OSError, RuntimeError) as err:
            return f"inductor needs a C++ compiler on the CPU ({err})"
    elif device.type == "cuda":
        from torch.utils._triton import has_triton
        if not has_triton():
            return "inductor needs Triton on the GPU (pip install triton)"
    return None


class _GuardedForward:
    """The compiled forward until torch fails to compile a call, then (one message) the eager one."""

    def __init__(self, eager: Callable, compiled: Callable, say: Callable[[str], None]) -> None:
        self.eager, self.compiled, self.say = eager, compiled, say
        self.failed = False

    def __call__(self, *args, **kwargs):
        if self.failed:
            return self.eager(*args, **kwargs)
        try:
            with _backward_compiled_now():
                return self.compiled(*args, **kwargs)
        except torch._dynamo.exc.TorchDynamoException as err:  # dynamo and inductor errors, not the model's own
            self.failed = True
            self.say(f"--compile: torch could not compile the training step ({_describe(err)}); training eager")
            return self.eager(*args, **kwargs)


def _describe(err: BaseException) -> str:
    """``BackendCompilerFailed: RuntimeError: <first line>``: the error, and the compiler's own under it."""
    inner = getattr(err, "inner_exception", None)
    cause = inner if isinstance(inner, BaseException) else err
    lines = str(cause).strip().splitlines()
    text = f"{type(cause).__name__}: {lines[0]}" if lines else type(cause).__name__
    return text if cause is err else f"{type(err).__name__}: {text}"


def _backward_compiled_now():
    """Compile the backward graph with the forward one (torch otherwise does it in the first backward,
    outside the guard); a no-op on a torch without the option."""
    if hasattr(torch._functorch.config, "force_non_lazy_backward_lowering"):
        return torch._functorch.config.patch(force_non_lazy_backward_lowering=True)
    return nullcontext()


def compile_step(module: nn.Module, device: torch.device, variants: int, backend: str | Callable = "inductor",
                 say: Callable[[str], None] = print) -> bool:
    """Compile ``module``'s forward in place (``variants``: the graphs to expect, one per task); whether it
    will run compiled. Where torch cannot compile, ``say`` gets one line naming the reason and the module
    stays eager; a failure at a later call (a task's first step) falls back the same way."""
    reason = compile_unavailable(device, backend)
    if reason is not None:
        say(f"--compile: {reason}; training eager")
        return False
    # Past this many graphs of one function torch stops compiling it; a run compiles one per task.
    limit = "recompile_limit" if hasattr(torch._dynamo.config, "recompile_limit") else "cache_size_limit"  # < 2.6
    setattr(torch._dynamo.config, limit, max(getattr(torch._dynamo.config, limit), 2 * variants))
    eager = module.forward
    module.forward = _GuardedForward(eager, torch.compile(eager, backend=backend), say)
    return True
