"""The `accelerate.Accelerator` settings every training loop shares (supervised and pretraining)."""

from __future__ import annotations

import torch


def resolve_precision(choice: str) -> str:
    """``auto``: bf16 on a GPU that supports it, else fp32 ("no"); any other choice as given."""
    if choice != "auto":
        return choice
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def tracker() -> str | None:
    """TensorBoard when it is installed (the ``dev`` extra), else no tracker."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return None
    return "tensorboard"
