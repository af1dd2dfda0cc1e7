"""Named DINOv3 backbone configurations: timm architecture, overrides and where pretrained weights live."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..limits import LimitError, check_bound, finite_number, positive_int


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


# The timm constructor arguments a config may set (config.json's ``backbone_overrides``, a pretraining
# YAML, a transformers checkpoint's size): architecture only, each a number or a flag. Everything else
# that timm's ``create_model`` takes is refused, above all ``checkpoint_path`` and
# ``pretrained_cfg_overlay``, with which timm reads (torch.load) a file: a downloaded model must not
# reach another file, nor unpickle anything.
OVERRIDE_KEYS = {
    "embed_dim": "a whole number (the width)",
    "depth": "a whole number (blocks)",
    "num_heads": "a whole number",
    "mlp_ratio": "a number in (0, 16]",
    "qkv_bias": "true or false",
    "rope_temperature": "a positive number",
    "num_reg_tokens": "a whole number >= 0",
}
# DINOv3 MLPs are 4x wide (the 7B's SwiGLU ~2x): 16x is far above any published ViT.
MAX_MLP_RATIO = 16.0


def check_overrides(overrides: Mapping, what: str = "backbone_overrides") -> dict:
    """``overrides`` if every key is an allowed architecture setting with a value within m2dino's
    limits (`m2dino.limits`), else one error naming ``what.key``. Checked before anything is built."""
    if not isinstance(overrides, Mapping):
        raise ValueError(f"{what}={overrides!r}: expected an object of architecture settings")
    for key, value in overrides.items():
        name = f"{what}.{key}"
        if key not in OVERRIDE_KEYS:
            raise ValueError(f"{name}: not an architecture setting m2dino passes to timm (allowed: "
                             f"{', '.join(OVERRIDE_KEYS)}); files and other constructor options are never "
                             "taken from a config")
        if key == "embed_dim" or key == "num_heads":
            positive_int(name, value, "width")
        elif key == "depth":
            positive_int(name, value, "blocks")
        elif key == "mlp_ratio":
            if finite_number(name, value, 0, MAX_MLP_RATIO) == 0:
                raise LimitError(f"{name}={value!r}: expected {OVERRIDE_KEYS[key]}")
        elif key == "qkv_bias":
            if not isinstance(value, bool):
                raise ValueError(f"{name}={value!r}: expected {OVERRIDE_KEYS[key]}")
        elif key == "rope_temperature":
            if finite_number(name, value, 0) == 0:
                raise LimitError(f"{name}={value!r}: expected {OVERRIDE_KEYS[key]}")
        elif key == "num_reg_tokens":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise LimitError(f"{name}={value!r}: expected {OVERRIDE_KEYS[key]}")
            check_bound(name, value, "registers")
    if "embed_dim" in overrides and "mlp_ratio" in overrides:
        check_bound(f"{what} MLP width (embed_dim × mlp_ratio)",
                    int(overrides["embed_dim"] * overrides["mlp_ratio"]), "width")
    return dict(overrides)
