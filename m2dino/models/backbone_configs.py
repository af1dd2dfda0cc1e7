"""Named DINOv3 backbone configurations: timm architecture, overrides and where pretrained weights live."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class BackboneConfig:
    timm_name: str                      # timm architecture the blocks are built from
    overrides: dict = field(default_factory=dict)  # constructor overrides (tiny test configs)
    timm_hub_id: str | None = None      # timm-layout weights on the Hub (ungated)
    transformers_hub_id: str | None = None  # transformers-layout weights (`DINOv3ViTModel`, gated)
    description: str = ""


BACKBONES: dict[str, BackboneConfig] = {
    "vit_small_patch16_dinov3": BackboneConfig(
        "vit_small_patch16_dinov3", {}, "timm/vit_small_patch16_dinov3.lvd1689m",
        "facebook/dinov3-vits16-pretrain-lvd1689m", "ViT-S/16, 21M parameters"),
    "vit_small_plus_patch16_dinov3": BackboneConfig(
        "vit_small_plus_patch16_dinov3", {}, "timm/vit_small_plus_patch16_dinov3.lvd1689m",
        "facebook/dinov3-vits16plus-pretrain-lvd1689m", "ViT-S+/16 (SwiGLU), 29M parameters"),
    "vit_base_patch16_dinov3": BackboneConfig(
        "vit_base_patch16_dinov3", {}, "timm/vit_base_patch16_dinov3.lvd1689m",
        "facebook/dinov3-vitb16-pretrain-lvd1689m", "ViT-B/16, 86M parameters"),
    "vit_large_patch16_dinov3": BackboneConfig(
        "vit_large_patch16_dinov3", {}, "timm/vit_large_patch16_dinov3.lvd1689m",
        "facebook/dinov3-vitl16-pretrain-lvd1689m", "ViT-L/16, 300M parameters"),
    "vit_huge_plus_patch16_dinov3": BackboneConfig(
        "vit_huge_plus_patch16_dinov3", {}, "timm/vit_huge_plus_patch16_dinov3.lvd1689m",
        "facebook/dinov3-vith16plus-pretrain-lvd1689m", "ViT-H+/16 (SwiGLU), 840M parameters"),
    # Small random-init configurations: unit tests and the embedded CPU training run.
    "vit_test_patch16_dinov3": BackboneConfig(
        "vit_small_patch16_dinov3", {"embed_dim": 64, "depth": 4, "num_heads": 2},
        description="4 blocks, width 64: unit tests only"),
    "vit_mini_patch16_dinov3": BackboneConfig(
        "vit_small_patch16_dinov3", {"embed_dim": 128, "depth": 4, "num_heads": 4},
        description="4 blocks, width 128: the embedded CPU training run"),
}

ALIASES = {"S": "vit_small_patch16_dinov3", "S+": "vit_small_plus_patch16_dinov3",
           "B": "vit_base_patch16_dinov3", "L": "vit_large_patch16_dinov3",
           "H+": "vit_huge_plus_patch16_dinov3", "test": "vit_test_patch16_dinov3",
           "mini": "vit_mini_patch16_dinov3"}


def resolve_backbone(name: str) -> tuple[str, BackboneConfig]:
    """Canonical name and config for a backbone name or alias (S, S+, B, L, H+, test, mini)."""
    canonical = ALIASES.get(name, name)
    if canonical not in BACKBONES:
        known = ", ".join([*BACKBONES, *ALIASES])
        raise ValueError(f"unknown backbone {name!r}; known backbones and aliases: {known}")
    return canonical, BACKBONES[canonical]
