"""Per-step schedules of self-distillation: teacher temperature warm-up and EMA momentum."""

from __future__ import annotations

import math


def teacher_temperature(step: int, warmup_steps: int, start: float = 0.04, end: float = 0.07) -> float:
    """Linear warm-up from ``start`` to ``end`` over ``warmup_steps``, then ``end`` (a sharp, low
    temperature early on keeps the young teacher from giving uniform targets)."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return end
    return start + (end - start) * step / warmup_steps


def ema_momentum(step: int, total_steps: int, start: float = 0.992, end: float = 1.0) -> float:
    """Cosine increase of the teacher's EMA momentum from ``start`` to ``end`` over the run."""
    progress = min(1.0, step / max(1, total_steps))
    return end - (end - start) * 0.5 * (1 + math.cos(math.pi * progress))
