"""Does a model folder's config.json describe the weights beside it? Checked before anything is allocated.

A downloaded model is input from a stranger: its config sets how much the model allocates (experts,
blocks, widths) while its weights file is bounded by its own size. So the config's sizes are read off
the safetensors header (`hub.read_shapes`: shapes only, nothing loaded) and compared field by field;
a mismatch is one error naming config.json's field and the weights' value. `M2DINO.from_pretrained`
then compares every key and shape against a model built on the meta device (no memory) before
building the real one.
"""

from __future__ import annotations

import re

from .convert_transformers import architecture_of
from .hub import Shapes
from .model_config import M2DINOConfig

_BLOCK = re.compile(r"^backbone\.blocks\.(\d+)\.")
_EXPERT = re.compile(r"^backbone\.blocks\.(\d+)\.mlp\.experts\.(?:experts\.)?(\d+)\.")
_FC2 = re.compile(r"^backbone\.blocks\.\d+\.mlp\.(?:experts\.(?:experts\.)?\d+\.)?fc2\.weight$")


class ConfigMismatch(ValueError):
    """config.json says one size, the weights file holds another."""


def check_config_fits_weights(config: M2DINOConfig, shapes: Shapes, config_source: str,
                              weights_source: str) -> None:
    """Raise `ConfigMismatch` naming the first config field whose value the weights contradict."""
    def mismatch(field: str, value: object, found: str) -> ConfigMismatch:
        return ConfigMismatch(f"{config_source}: {field}={value!r} but {weights_source} holds {found}; "
                              "config.json and the weights must come from the same model")

    overrides = config.backbone_overrides

    def backbone_field(key: str) -> tuple[str, object]:
        return (f"backbone_overrides.{key}", overrides[key]) if key in overrides else ("backbone", config.backbone)

    architecture = architecture_of(config.backbone, overrides)  # a meta-device build: no memory
    if "backbone.cls_token" in shapes and shapes["backbone.cls_token"][-1] != architecture["embed_dim"]:
        raise mismatch(*backbone_field("embed_dim"), f"width {shapes['backbone.cls_token'][-1]} "
                       f"(the config's backbone has width {architecture['embed_dim']})")
    blocks = {int(m.group(1)) for key in shapes if (m := _BLOCK.match(key))}
    if blocks and len(blocks) != architecture["depth"]:
        raise mismatch(*backbone_field("depth"), f"{len(blocks)} blocks (the config's backbone has "
                       f"{architecture['depth']})")
    hidden = {shape[1] for key, shape in shapes.items() if _FC2.match(key) and len(shape) == 2}
    expected_hidden = int(re.sub(r"\D", "", architecture["mlp"]))
    if hidden and hidden != {expected_hidden}:
        raise mismatch(*backbone_field("mlp_ratio"), f"MLP width {sorted(hidden)[0]} (the config's backbone "
                       f"has {expected_hidden})")
    depth = architecture["depth"]
    routed = {int(m.group(1)) for key in shapes if (m := re.match(r"^backbone\.blocks\.(\d+)\.mlp\.router\.", key))}
    if routed != {b % depth for b in config.moe_blocks}:
        raise mismatch("moe_blocks", list(config.moe_blocks), f"MoE blocks {sorted(routed)}")
    experts: dict[int, set[int]] = {}
    for key in shapes:
        if m := _EXPERT.match(key):
            experts.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    for block in sorted(routed):
        found = len(experts.get(block, ()))
        if found != config.num_experts:
            raise mismatch("num_experts", config.num_experts, f"{found} experts in block {block}")
        has_token_router = f"backbone.blocks.{block}.mlp.router.token_proj.weight" in shapes
        if has_token_router != (config.routing == "task+token"):
            raise mismatch("routing", config.routing, f"{'a' if has_token_router else 'no'} token router "
                           f"in block {block}")
    for block, kept in config.collapsed_moe.items():
        found = len(experts.get(block % depth, ()))
        if found != kept:
            raise mismatch(f"collapsed_moe[{block}]", kept, f"{found} experts in block {block % depth}")
    table = shapes.get("task_embedding.weight")
    if table is not None and len(table) == 2:
        if table[0] != len(config.tasks):
            raise mismatch("tasks", config.tasks, f"{table[0]} task embeddings")
        if table[1] != config.task_embed_dim:
            raise mismatch("task_embed_dim", config.task_embed_dim, f"task embeddings of width {table[1]}")
    heads = {key.split(".")[1] for key in shapes if key.startswith("heads.")}
    if heads and heads != set(config.tasks):
        raise mismatch("tasks", config.tasks, f"heads for {sorted(heads)}")
