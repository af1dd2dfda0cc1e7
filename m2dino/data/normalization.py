"""Pixel normalisation as the backbone was pretrained with (timm's pretrained config)."""

from __future__ import annotations

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalization_for_backbone(timm_name: str | None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) from ``timm.models.get_pretrained_cfg(timm_name)``; ImageNet's when the name is
    ``None`` or unknown to timm (DINOv3's LVD-1689M weights use ImageNet statistics too)."""
    if timm_name is None:
        return IMAGENET_MEAN, IMAGENET_STD
    import timm  # deferred: importing timm costs about a second

    cfg = timm.models.get_pretrained_cfg(timm_name)
    if cfg is None or cfg.mean is None or cfg.std is None:
        return IMAGENET_MEAN, IMAGENET_STD
    return tuple(float(v) for v in cfg.mean), tuple(float(v) for v in cfg.std)
