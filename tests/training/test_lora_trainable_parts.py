"""Under LoRA the backbone's own weights freeze, and every part m2dino adds (heads, routers, task
embeddings, the spatial-prior branch) keeps training in full."""

from __future__ import annotations

from m2dino import M2DINO, M2DINOConfig
from m2dino.training.lora import apply_lora


def test_lora_keeps_the_new_parts_trainable_and_freezes_the_backbone_weights():
    model = M2DINO(M2DINOConfig(backbone="test", tasks=["fetal_head", "fetal_plane_cls"], image_size=32,
                                moe_blocks=(1,), num_experts=2, top_k=1, spatial_prior=True))
    wrapped = apply_lora(model, rank=2)
    trainable = {n for n, p in wrapped.named_parameters() if p.requires_grad}
    prior = [n for n, _ in wrapped.named_parameters() if "spatial_prior." in n]
    assert prior and all(n in trainable for n in prior)
    assert any("heads." in n for n in trainable) and any("lora_" in n for n in trainable)
    frozen = [n for n in (n for n, _ in wrapped.named_parameters()) if n not in trainable]
    assert any("attn.qkv.base_layer.weight" in n for n in frozen)
