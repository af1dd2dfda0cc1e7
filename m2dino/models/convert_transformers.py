"""transformers' `DINOv3ViTModel` (``facebook/dinov3-*``) to our backbone: state dict and architecture.

Our backbone keeps timm's `Eva` names, so the target layout is timm's. Verified against transformers 5.x
``modeling_dinov3_vit.py`` and timm's ``eva.py`` (parity tests: < 1e-5 in fp32):

- q/k/v: three ``nn.Linear`` in transformers, one fused ``qkv`` (rows q, k, v) in timm. timm's
  attention has no key bias (DINOv3 masks it), so a key bias must be zero and is dropped; query and
  value biases become ``attn.q_bias`` / ``attn.v_bias`` (a backbone built with ``qkv_bias=True``;
  `pretrained_weights` drops them for one without if they are all zero).
- LayerScale ``layer_scale{1,2}.lambda1`` -> ``gamma_{1,2}``; registers -> ``reg_token``.
- Gated MLP (S+, H+): ``down(silu(gate(x)) * up(x))`` equals timm's ``SwiGLU``
  ``fc2(silu(fc1_g(x)) * fc1_x(x))``: gate -> ``fc1_g``, up -> ``fc1_x``. The DINOv3 variants use the
  split SwiGLU (``swiglu_align_to=8``), not the packed ``GluMlp``, so nothing is concatenated.
- Linear layers without bias (``proj_bias`` / ``mlp_bias`` False) get zero biases: exact.
- ``mask_token`` is dropped: it only replaces masked patches in pretraining (``bool_masked_pos``).
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Any

import timm
import torch
from torch import nn

from .backbone_configs import BACKBONES, resolve_backbone

TIMM_ROPE_TEMPERATURE = 100.0  # rope_temperature of every timm `vit_*_patch16_dinov3`
TIMM_NUM_REGISTERS = 4

_GLOBAL_KEYS = {
    "embeddings.cls_token": "cls_token",
    "embeddings.register_tokens": "reg_token",
    "embeddings.patch_embeddings.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.bias": "patch_embed.proj.bias",
    "norm.weight": "norm.weight",
    "norm.bias": "norm.bias",
}
_PRETRAINING_ONLY = {"embeddings.mask_token"}
# Files (the Hub, save_pretrained) name the encoder ``layer.N``; transformers 5 models in memory ``model.layer.N``.
_LAYER_KEY = re.compile(r"^(?:model\.)?layer\.(\d+)\.(.+)$")
_BLOCK_PARAMS = {
    "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias",
    "attention.q_proj.weight", "attention.k_proj.weight", "attention.v_proj.weight",
    "attention.q_proj.bias", "attention.k_proj.bias", "attention.v_proj.bias",
    "attention.o_proj.weight", "attention.o_proj.bias",
    "layer_scale1.lambda1", "layer_scale2.lambda1",
    "mlp.gate_proj.weight", "mlp.gate_proj.bias", "mlp.up_proj.weight", "mlp.up_proj.bias",
    "mlp.down_proj.weight", "mlp.down_proj.bias",
}


def is_transformers_state_dict(state_dict: dict[str, torch.Tensor]) -> bool:
    return "embeddings.patch_embeddings.weight" in state_dict


def convert_transformers_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A `DINOv3ViTModel` / `DINOv3ViTBackbone` state dict in timm's (= our backbone's) layout."""
    out: dict[str, torch.Tensor] = {}
    blocks: dict[int, dict[str, torch.Tensor]] = {}
    unknown = []
    for key, value in state_dict.items():
        layer = _LAYER_KEY.match(key)
        if layer and layer.group(2) in _BLOCK_PARAMS:
            blocks.setdefault(int(layer.group(1)), {})[layer.group(2)] = value
        elif key in _GLOBAL_KEYS:
            out[_GLOBAL_KEYS[key]] = value
        elif key not in _PRETRAINING_ONLY:
            unknown.append(key)
    if unknown:
        raise ValueError(f"not a DINOv3ViTModel state dict: unknown keys {sorted(unknown)[:8]}"
                         f"{f' (and {len(unknown) - 8} more)' if len(unknown) > 8 else ''}")
    if "reg_token" in out and out["reg_token"].shape[1] == 0:
        del out["reg_token"]  # timm represents "no registers" by no parameter
    for index in sorted(blocks):
        out.update(_convert_block(blocks[index], index))
    return out


def _convert_block(params: dict[str, torch.Tensor], index: int) -> dict[str, torch.Tensor]:
    prefix = f"blocks.{index}."
    out = {prefix + name: params[name] for name in ("norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias")}
    out[prefix + "gamma_1"] = params["layer_scale1.lambda1"]
    out[prefix + "gamma_2"] = params["layer_scale2.lambda1"]
    out[prefix + "attn.qkv.weight"] = torch.cat([params[f"attention.{p}_proj.weight"] for p in "qkv"])
    key_bias = params.get("attention.k_proj.bias")
    if key_bias is not None and key_bias.any():
        # RoPE rotates the key bias differently per patch, so it does not cancel in the softmax.
        raise ValueError(f"layer {index}: attention.k_proj.bias is non-zero: timm's DINOv3 attention has no key "
                         "bias (DINOv3 masks it to zero), so this checkpoint cannot be represented")
    if "attention.q_proj.bias" in params or "attention.v_proj.bias" in params:
        out[prefix + "attn.q_bias"] = _bias(params, "attention.q_proj")
        out[prefix + "attn.v_bias"] = _bias(params, "attention.v_proj")
    out[prefix + "attn.proj.weight"] = params["attention.o_proj.weight"]
    out[prefix + "attn.proj.bias"] = _bias(params, "attention.o_proj")
    gated = "mlp.gate_proj.weight" in params
    fc1 = ("fc1_x", "fc1_g") if gated else ("fc1",)
    for source, target in zip(("mlp.up_proj", "mlp.gate_proj"), fc1):
        out[f"{prefix}mlp.{target}.weight"] = params[f"{source}.weight"]
        out[f"{prefix}mlp.{target}.bias"] = _bias(params, source)
    out[prefix + "mlp.fc2.weight"] = params["mlp.down_proj.weight"]
    out[prefix + "mlp.fc2.bias"] = _bias(params, "mlp.down_proj")
    return out


def _bias(params: dict[str, torch.Tensor], linear: str) -> torch.Tensor:
    """The linear layer's bias, or zeros if it was built without one (timm's layers always have one)."""
    if f"{linear}.bias" in params:
        return params[f"{linear}.bias"]
    weight = params[f"{linear}.weight"]
    return weight.new_zeros(weight.shape[0])


def backbone_architecture(vit: nn.Module) -> dict[str, Any]:
    """What decides a dense backbone's function given its weights (our `DINOv3Backbone` or timm's `Eva`).

    q/v biases are left out on purpose: zero biases convert either way (see `pretrained_weights`).
    """
    block = vit.blocks[0]
    return {
        "embed_dim": vit.embed_dim,
        "depth": len(vit.blocks),
        "num_heads": block.attn.num_heads,
        "mlp": f"{type(block.mlp).__name__}({block.mlp.fc2.in_features})",
        "num_reg_tokens": 0 if vit.reg_token is None else vit.reg_token.shape[1],
        "patch_size": tuple(vit.patch_embed.patch_size),
        "rope_temperature": float(vit.rope.temperature),
        "norm_eps": vit.norm.eps,
    }


@lru_cache(maxsize=32)
def _architecture_of(name: str, overrides: tuple[tuple[str, Any], ...]) -> tuple[tuple[str, Any], ...]:
    _, config = resolve_backbone(name)
    with torch.device("meta"):  # no memory, no init cost: even H+ builds in a fraction of a second
        vit = timm.create_model(config.timm_name, pretrained=False, num_classes=0,
                                **{**config.overrides, **dict(overrides)})
    return tuple(backbone_architecture(vit).items())


def architecture_of(name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """`backbone_architecture` of ``DINOv3Backbone(name, **overrides)``, without allocating it."""
    return dict(_architecture_of(name, tuple(sorted((overrides or {}).items()))))


def backbone_spec_from_transformers_config(config: Any) -> tuple[str, dict[str, Any]]:
    """``(name, overrides)`` such that ``DINOv3Backbone(name, **overrides)`` computes what
    ``DINOv3ViTModel(config)`` computes (eval mode). ``config`` is a `DINOv3ViTConfig`.

    A size known to `BACKBONES` is returned by its name (e.g. ``facebook/dinov3-vitb16-*`` ->
    ``vit_base_patch16_dinov3`` with ``qkv_bias=True``); other sizes as overrides of S or S+.
    Ignored on purpose: ``pos_embed_shift/jitter/rescale`` (RoPE coordinate augmentation that
    transformers applies in train mode only: a training choice, not part of the weights),
    ``layerscale_value`` and ``initializer_range`` (initialisation), dropouts, ``image_size`` (any size runs).
    """
    _check_supported(config)
    variant: dict[str, Any] = {}
    if config.query_bias or config.value_bias:
        variant["qkv_bias"] = True
    if config.rope_theta != TIMM_ROPE_TEMPERATURE:
        variant["rope_temperature"] = float(config.rope_theta)
    if config.num_register_tokens != TIMM_NUM_REGISTERS:
        variant["num_reg_tokens"] = config.num_register_tokens
    mlp_ratio = config.intermediate_size / config.hidden_size
    while int(config.hidden_size * mlp_ratio) < config.intermediate_size:  # timm truncates dim * ratio
        mlp_ratio = math.nextafter(mlp_ratio, math.inf)
    base = "vit_small_plus_patch16_dinov3" if config.use_gated_mlp else "vit_small_patch16_dinov3"
    size = {"embed_dim": config.hidden_size, "depth": config.num_hidden_layers,
            "num_heads": config.num_attention_heads, "mlp_ratio": mlp_ratio}
    wanted = architecture_of(base, size)
    for name in BACKBONES:  # a named size plus the variant settings, which apply to any size
        if architecture_of(name) == wanted:
            return name, variant
    return base, {**size, **variant}


def _check_supported(config: Any) -> None:
    """Settings that no `DINOv3Backbone` reproduces: refuse rather than compute something else."""
    problems = []
    if getattr(config, "model_type", None) != "dinov3_vit":
        problems.append(f"model_type {getattr(config, 'model_type', None)!r} is not 'dinov3_vit'")
    patch = config.patch_size if isinstance(config.patch_size, int) else tuple(config.patch_size)
    if patch not in (16, (16, 16)):
        problems.append(f"patch_size={config.patch_size}: m2dino backbones are ViT/16")
    if config.num_channels != 3:
        problems.append(f"num_channels={config.num_channels}: the backbone takes RGB (3 channels)")
    activation = "silu" if config.use_gated_mlp else "gelu"
    if config.hidden_act != activation:
        problems.append(f"hidden_act={config.hidden_act!r} with use_gated_mlp={config.use_gated_mlp}: timm's "
                        f"DINOv3 {'SwiGLU' if config.use_gated_mlp else 'MLP'} uses {activation!r}")
    if config.layer_norm_eps != 1e-5:
        problems.append(f"layer_norm_eps={config.layer_norm_eps}: timm's DINOv3 LayerNorm has eps 1e-5")
    head_dim, rest = divmod(config.hidden_size, config.num_attention_heads)
    if rest or head_dim % 4:
        problems.append(f"hidden_size={config.hidden_size} / num_attention_heads={config.num_attention_heads}: "
                        "2-D RoPE needs an integer head dim divisible by 4")
    if config.use_gated_mlp and config.intermediate_size % 8:
        problems.append(f"intermediate_size={config.intermediate_size}: timm's DINOv3 SwiGLU rounds its "
                        "hidden size up to a multiple of 8")
    if problems:
        raise ValueError("unsupported DINOv3ViTConfig: " + "; ".join(problems))
