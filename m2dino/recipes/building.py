"""The model a run builds for a set of tasks, and the engine config it trains with."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..models import M2DINO, M2DINOConfig, resolve_backbone
from ..models.pretrained_weights import backbone_spec_for_weights
from ..training.train_config import TrainConfig, TrainSettings
from .run_config import ModelSettings

FALLBACK_BACKBONE = "mini"  # the backbone when neither model.backbone nor pretrained weights name one


def backbone_for(backbone: str | None, pretrained: str | None) -> tuple[str, dict]:
    """The backbone to build: ``backbone``, else the size the pretrained weights imply, else ``mini``.
    A transformers checkpoint's config.json decides its size and variant (e.g. q/v biases)."""
    implied = None
    if pretrained is not None:
        if pretrained.startswith("timm/"):
            architecture = pretrained.split("/", 1)[1].split(".")[0]
            qkvb = architecture.endswith("_qkvb")
            implied = (architecture.removesuffix("_qkvb"), {"qkv_bias": True} if qkvb else {})
        else:
            implied = backbone_spec_for_weights(pretrained)
    if backbone is None:
        return implied or (FALLBACK_BACKBONE, {})
    name = resolve_backbone(backbone)[0]
    if implied is not None and resolve_backbone(implied[0])[0] != name:
        raise ValueError(f"--pretrained {pretrained} holds a {implied[0]} backbone but --backbone is {backbone}; "
                         "drop --backbone to use the checkpoint's size")
    return name, implied[1] if implied else {}


def model_config(settings: ModelSettings, tasks: Sequence[str]) -> M2DINOConfig:
    backbone, overrides = backbone_for(settings.backbone, settings.pretrained)
    return M2DINOConfig(backbone=backbone, backbone_overrides=overrides, tasks=list(tasks),
                        moe_blocks=settings.moe_blocks, num_experts=settings.num_experts, top_k=settings.top_k,
                        routing=settings.routing, decoder_features=settings.decoder_features,
                        image_size=settings.image_size, spatial_prior=settings.spatial_prior)


def build_model(settings: ModelSettings, tasks: Sequence[str], seed: int) -> M2DINO:
    """A seeded M2DINO for ``tasks`` (with the pretrained backbone, if any)."""
    torch.manual_seed(seed)
    return M2DINO(model_config(settings, tasks), backbone_weights=settings.pretrained)


def train_config(settings: TrainSettings, output_dir, tasks: Sequence[str]) -> TrainConfig:
    return TrainConfig.for_model(settings, str(output_dir), list(tasks))
