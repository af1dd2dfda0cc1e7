"""LoRA through `peft` on the attention and MLP/expert projections of the backbone."""

from __future__ import annotations

from torch import nn

# Linear layers of timm's blocks: fused qkv + output projection, plain MLP (fc1/fc2), SwiGLU (fc1_g/fc1_x),
# and the same inside every MoE expert.
LORA_TARGETS = r".*blocks\.\d+\.(attn\.(qkv|proj)|mlp\.(experts\.experts\.\d+\.)?(fc1|fc2|fc1_g|fc1_x))"
# New parts keep training in full: heads, routers, task embeddings, the spatial-prior branch.
TRAINABLE_WITH_LORA = ("heads.", ".router.", "task_embedding", "spatial_prior.")


def apply_lora(model: nn.Module, rank: int, alpha: float | None = None, dropout: float = 0.0) -> nn.Module:
    """Wrap ``model`` in a peft LoRA model; heads, routers, task embeddings and the spatial-prior branch
    stay fully trainable."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=alpha or 2 * rank, lora_dropout=dropout, target_modules=LORA_TARGETS)
    peft_model = get_peft_model(model, config)
    for name, param in peft_model.named_parameters():
        if any(key in name for key in TRAINABLE_WITH_LORA):
            param.requires_grad_(True)
    return peft_model


def merge_lora(model: nn.Module) -> nn.Module:
    """The plain model with LoRA deltas merged into its weights (what gets saved and published)."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model


def freeze_backbone(model: nn.Module) -> None:
    """Train heads, routers and task embeddings only."""
    for name, param in model.named_parameters():
        param.requires_grad_(not name.startswith("backbone.") or ".router." in name)
