"""Render the model card (README.md of a saved model) from the packaged template `m2dino/model_cards/m2dino.md`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib.resources import files

from huggingface_hub import ModelCard, ModelCardData

from .backbone_configs import BACKBONES
from .model_config import M2DINOConfig


def _weights_license(weights: str | None) -> tuple[str, str]:
    """(license line, Hub license id). DINOv3 weights come under Meta's DINOv3 License."""
    if not weights:
        return "none: the backbone was randomly initialised (no pretrained weights)", "apache-2.0"
    return (f"`{weights}`: DINOv3 License (https://ai.meta.com/resources/models-and-libraries/dinov3-license/); "
            "derivatives must keep it", "other")


# Package data, so a normal (non-editable) install renders cards too.
TEMPLATE = files("m2dino") / "model_cards" / "m2dino.md"


def render_model_card(config: M2DINOConfig, depth: int, width: int, moe_blocks: Sequence[int],
                      num_parameters: int, extra: dict) -> str:
    """The card of a model built from ``config`` (its ``task_specs`` filled in, as a model's own config
    has them): the backbone's ``depth`` and ``width``, the blocks that are MoEs, the parameter count and
    ``extra`` (model_name, evaluation_table, training_config, repo_id)."""
    license_line, license_id = _weights_license(config.backbone_weights)
    specs = [config.task_specs[t] for t in config.tasks]
    card_data = ModelCardData(license=license_id, library_name="m2dino",
                              tags=["ultrasound", "medical-imaging", "dinov3", "mixture-of-experts", "multi-task"],
                              **({"license_name": "dinov3-license"} if license_id == "other" else {}))
    if moe_blocks:
        moe = (f"blocks {list(moe_blocks)}: {config.num_experts} experts, top-{config.top_k}, "
               f"{config.routing} routing")
    elif config.collapsed_moe:
        moe = f"extracted for one task: blocks {sorted(config.collapsed_moe)} keep {config.top_k} fixed experts"
    else:
        moe = "none (dense)"
    card = ModelCard.from_template(
        card_data, template_path=str(TEMPLATE),
        model_name=extra.get("model_name", "M2DINO"),
        backbone=config.backbone, depth=depth, width=width,
        moe_summary=moe, image_size="×".join(map(str, config.image_size)), resize_mode=config.resize_mode,
        mean=list(config.mean), std=list(config.std),
        num_parameters=f"{num_parameters / 1e6:.2f} M",
        backbone_weights=config.backbone_weights or "random initialisation",
        backbone_description=BACKBONES[config.backbone].description,
        num_tasks=len(specs), tasks=specs, first_task=config.tasks[0],
        evaluation_table=extra.get("evaluation_table"),
        training_config=json.dumps(extra["training_config"], indent=2) if extra.get("training_config") else None,
        repo_hint=extra.get("repo_id", "path/or/org-name"), weights_license=license_line)
    return str(card)
