"""With no MoE blocks our backbone computes what timm's and transformers' DINOv3 compute (fp32, < 1e-5)."""

import pytest
import timm
import torch

from m2dino.models.backbone import DINOv3Backbone
from m2dino.models.backbone_configs import resolve_backbone
from m2dino.models.convert_transformers import backbone_spec_from_transformers_config, convert_transformers_state_dict

SIZES = [(16, 16), (32, 48), (64, 32)]  # H×W, non-square both ways
TOLERANCE = 1e-5


def assert_tokens_match(ours: torch.Tensor, reference: torch.Tensor, num_registers: int) -> None:
    assert ours.shape == reference.shape
    prefix = 1 + num_registers
    for part, index in (("CLS", slice(0, 1)), ("registers", slice(1, prefix)), ("patches", slice(prefix, None))):
        if index.stop != index.start:  # no registers: nothing to compare
            difference = (ours[:, index] - reference[:, index]).abs().max().item()
            assert difference < TOLERANCE, f"{part}: max abs difference {difference:.2e}"


@pytest.mark.parametrize("name, overrides", [
    ("test", {}),
    ("test", {"qkv_bias": True}),
    ("S+", {"embed_dim": 64, "depth": 2, "num_heads": 2}),  # SwiGLU
])
def test_matches_timm(name, overrides, randomize):
    ours = randomize(DINOv3Backbone(name, **overrides)).eval()
    _, config = resolve_backbone(name)
    timm_model = timm.create_model(config.timm_name, pretrained=False, num_classes=0,
                                   **{**config.overrides, **overrides}).eval()
    timm_model.load_state_dict(ours.state_dict(), strict=True)  # one layout: the same keys and shapes
    for height, width in SIZES:
        x = torch.randn(2, 3, height, width)
        with torch.no_grad():
            out = ours.forward_features(x)
            expected = timm_model.forward_features(x)
        assert out.tokens.shape[1] == 1 + 4 + height * width // 256
        assert_tokens_match(out.tokens, expected, num_registers=4)


TRANSFORMERS_VARIANTS = {
    "plain MLP, q/v biases (facebook S/B/L)": {},
    "SwiGLU, no biases anywhere": dict(use_gated_mlp=True, hidden_act="silu", intermediate_size=96, query_bias=False,
                                       value_bias=False, proj_bias=False, mlp_bias=False),
    "SwiGLU, q/k/v biases (key bias zero)": dict(use_gated_mlp=True, hidden_act="silu", intermediate_size=128,
                                                key_bias=True),
    "RoPE theta 50, 2 registers": dict(rope_theta=50.0, num_register_tokens=2),
    "no registers": dict(num_register_tokens=0),
    "odd width (float mlp_ratio)": dict(hidden_size=56, intermediate_size=115),
}


@pytest.mark.parametrize("variant", TRANSFORMERS_VARIANTS)
def test_matches_transformers(variant, tiny_transformers):
    model = tiny_transformers(**TRANSFORMERS_VARIANTS[variant])
    name, overrides = backbone_spec_from_transformers_config(model.config)
    ours = DINOv3Backbone(name, **overrides).eval()
    ours.load_state_dict(convert_transformers_state_dict(model.state_dict()), strict=True)
    for height, width in SIZES:
        x = torch.randn(2, 3, height, width)
        with torch.no_grad():
            out = ours.forward_features(x).tokens
            expected = model(pixel_values=x).last_hidden_state
        assert_tokens_match(out, expected, model.config.num_register_tokens)


def test_hub_layout_without_model_prefix(tiny_transformers):
    """Checkpoints on the Hub (and save_pretrained) use ``layer.N``; transformers 5 nests it as ``model.layer.N``."""
    state = tiny_transformers().state_dict()
    flat = {key.removeprefix("model."): value for key, value in state.items()}
    assert any(key.startswith("layer.0.") for key in flat)
    converted, nested = convert_transformers_state_dict(flat), convert_transformers_state_dict(state)
    assert converted.keys() == nested.keys()
    assert all(torch.equal(converted[key], nested[key]) for key in converted)


def _config(**fields):
    from transformers import DINOv3ViTConfig

    return DINOv3ViTConfig(**fields)


GATED = dict(use_gated_mlp=True, hidden_act="silu")


@pytest.mark.parametrize("expected, fields", [  # the facebook/dinov3-* configurations
    ("vit_small_patch16_dinov3", dict(hidden_size=384, intermediate_size=1536, num_hidden_layers=12,
                                      num_attention_heads=6)),
    ("vit_small_plus_patch16_dinov3", dict(hidden_size=384, intermediate_size=1536, num_hidden_layers=12,
                                           num_attention_heads=6, **GATED)),
    ("vit_base_patch16_dinov3", dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                     num_attention_heads=12)),
    ("vit_large_patch16_dinov3", dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                                      num_attention_heads=16)),
    ("vit_huge_plus_patch16_dinov3", dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
                                          num_attention_heads=20, **GATED)),
    ("vit_test_patch16_dinov3", dict(hidden_size=64, intermediate_size=256, num_hidden_layers=4,
                                     num_attention_heads=2)),
])
def test_known_sizes_map_to_their_names(expected, fields):
    spec = backbone_spec_from_transformers_config(_config(num_register_tokens=4, **fields))
    assert spec == (expected, {"qkv_bias": True})


def test_other_sizes_map_to_overrides():
    fields = dict(hidden_size=128, intermediate_size=512, num_hidden_layers=3, num_attention_heads=4,
                  num_register_tokens=4, query_bias=False, value_bias=False, rope_theta=10000.0, **GATED)
    assert backbone_spec_from_transformers_config(_config(**fields)) == (
        "vit_small_plus_patch16_dinov3",
        {"embed_dim": 128, "depth": 3, "num_heads": 4, "mlp_ratio": 4.0, "rope_temperature": 10000.0})


@pytest.mark.parametrize("fields, message", [
    (dict(patch_size=14), "ViT/16"),
    (dict(layer_norm_eps=1e-6), "eps"),
    (dict(hidden_act="gelu_pytorch_tanh"), "hidden_act"),
    (dict(use_gated_mlp=True, hidden_act="gelu"), "hidden_act"),
    (dict(use_gated_mlp=True, hidden_act="silu", intermediate_size=100), "multiple of 8"),
    (dict(hidden_size=60, num_attention_heads=2), "divisible by 4"),
    (dict(num_channels=1), "RGB"),
])
def test_unsupported_configs_are_refused(fields, message):
    config = _config(**{"hidden_size": 64, "intermediate_size": 256, "num_attention_heads": 2, **fields})
    with pytest.raises(ValueError, match=message):
        backbone_spec_from_transformers_config(config)


def test_nonzero_key_bias_is_refused(tiny_transformers):
    state = tiny_transformers(key_bias=True).state_dict()
    state["model.layer.1.attention.k_proj.bias"] = torch.full_like(state["model.layer.1.attention.k_proj.bias"], 0.1)
    with pytest.raises(ValueError, match="layer 1: attention.k_proj.bias is non-zero"):
        convert_transformers_state_dict(state)


def test_unknown_keys_are_refused(tiny_transformers):
    state = {**tiny_transformers().state_dict(), "classifier.weight": torch.zeros(2, 64)}
    with pytest.raises(ValueError, match="classifier.weight"):
        convert_transformers_state_dict(state)
