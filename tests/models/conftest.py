"""Shared fixtures of the model tests. Keep imports here light: every test in this folder pays for them."""

from __future__ import annotations

from typing import Callable

import pytest
import torch
from torch import nn


def _randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Every parameter random, so that a mis-mapped weight changes the output.

    Pretrained-style init would hide mistakes: timm starts LayerScale at 1e-5 (blocks ~ identity) and
    biases at zero. Scales (LayerScale, norm weights) stay near 1, the rest near 0. Key biases stay
    zero: DINOv3 has none (timm cannot represent one).
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            noise = torch.randn(param.shape, generator=generator) * 0.1
            if name.endswith("k_proj.bias"):
                continue
            is_scale = name.endswith(("gamma_1", "gamma_2", "lambda1")) or (
                "norm" in name and name.endswith("weight"))
            param.copy_(noise + 1.0 if is_scale else noise)
    return module


@pytest.fixture
def randomize() -> Callable[..., nn.Module]:
    """``randomize(module, seed=0)``: random weights in place (returns the module)."""
    return _randomize


@pytest.fixture
def tiny_transformers() -> Callable[..., nn.Module]:
    """``tiny_transformers(seed=0, **config)``: a random-weight `DINOv3ViTModel` in eval mode.

    Width 64, 2 layers, 2 heads, 4 registers; transformers' own defaults otherwise (q/v biases, GELU).
    Eval mode matters: in train mode transformers jitters the RoPE coordinates.
    """
    from transformers import DINOv3ViTConfig, DINOv3ViTModel  # slow import: only the tests that use it

    def make(seed: int = 0, **overrides) -> nn.Module:
        config = DINOv3ViTConfig(**{"hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 2,
                                    "num_attention_heads": 2, "num_register_tokens": 4, **overrides})
        return _randomize(DINOv3ViTModel(config), seed).eval()

    return make
