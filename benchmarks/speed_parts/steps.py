"""The timed workloads: a forward under no_grad, a training step (forward + backward + AdamW), in
fp32 or bf16 autocast, and the paired timer that synchronises the device around each sample."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable

import torch
from torch.utils.flop_counter import FlopCounterMode

from harness.timing import PairedTimer

from .plan import BALANCE_WEIGHT


def make_timer(device: torch.device, inner: int, warmup: int) -> PairedTimer:
    """A `PairedTimer` whose clock waits for the GPU's queued work (a no-op on CPU)."""
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else None
    return PairedTimer(inner=inner, warmup=warmup, sync=sync)


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision != "fp32":
        raise ValueError(f"unknown precision {precision!r}; expected 'fp32' or 'bf16'")
    return contextlib.nullcontext()


def forward_fn(fn: Callable[[], object], device: torch.device, precision: str) -> Callable[[], None]:
    def call() -> None:
        with torch.no_grad(), autocast(device, precision):
            fn()
    return call


def train_fn(loss_fn: Callable[[], torch.Tensor], params: Iterable[torch.nn.Parameter], device: torch.device,
             precision: str) -> Callable[[], None]:
    """Forward + backward + AdamW step (grads set to None after; unused experts are skipped)."""
    optimizer = torch.optim.AdamW([p for p in params if p.requires_grad], lr=1e-6)

    def step() -> None:
        with autocast(device, precision):
            loss = loss_fn()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def token_loss(tokens: torch.Tensor, aux: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of the tokens (+ BALANCE_WEIGHT × the MoE balancing loss): a loss that touches every output."""
    loss = tokens.float().mean()
    return loss if aux is None else loss + BALANCE_WEIGHT * aux


def count_flops(fn: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())
