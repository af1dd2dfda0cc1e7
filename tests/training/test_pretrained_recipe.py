"""`--pretrained` picks the backbone the weights need (size, q/v biases) unless --backbone says otherwise."""

import pytest
import torch

from m2dino.recipes.building import backbone_for, build_model
from m2dino.recipes.run_config import ModelSettings


def test_timm_ids_imply_their_architecture():
    assert backbone_for(None, "timm/vit_base_patch16_dinov3.lvd1689m") == ("vit_base_patch16_dinov3", {})
    assert backbone_for(None, "timm/vit_small_patch16_dinov3_qkvb.lvd1689m") == \
        ("vit_small_patch16_dinov3", {"qkv_bias": True})
    assert backbone_for(None, None) == ("mini", {})
    with pytest.raises(ValueError, match="holds a vit_base_patch16_dinov3 backbone but --backbone is S"):
        backbone_for("S", "timm/vit_base_patch16_dinov3.lvd1689m")


def test_a_transformers_checkpoint_with_qv_biases_builds_the_matching_backbone(tmp_path):
    from transformers import DINOv3ViTConfig, DINOv3ViTModel

    torch.manual_seed(0)
    config = DINOv3ViTConfig(hidden_size=64, num_hidden_layers=4, num_attention_heads=2, intermediate_size=256,
                             query_bias=True, value_bias=True, key_bias=False)
    hf = DINOv3ViTModel(config).eval()
    with torch.no_grad():
        for layer in hf.model.layer if hasattr(hf, "model") else hf.layer:
            layer.attention.q_proj.bias.normal_()
    hf.save_pretrained(tmp_path)
    model = build_model(ModelSettings(pretrained=str(tmp_path), moe_blocks=(), image_size=32), ["fetal_plane_cls"],
                        seed=0)
    assert model.config.backbone_overrides["qkv_bias"] is True
    assert model.config.backbone_weights == str(tmp_path)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        ours = model.backbone.forward_features(x).tokens
        theirs = hf(pixel_values=x).last_hidden_state
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
