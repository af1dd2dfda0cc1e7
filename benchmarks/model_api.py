"""The m2dino calls the benchmarks need that the library has only in private form (issue 9, item 8).

Every benchmark goes through these functions instead of a ``model._name``, so there is one place to
see what is missing and one place to switch. Each function uses the public method named in its
docstring as soon as the model has it, and the private one until then.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from m2dino.models import M2DINO
from m2dino.models.backbone import BackboneOutput
from m2dino.models.moe import TaskRouting


def _public(model: M2DINO, name: str):
    return getattr(type(model), name, None) and getattr(model, name)


def routing(model: M2DINO, tasks: Sequence[str]) -> TaskRouting:
    """Routing for a batch with one task id per sample: public ``M2DINO.routing(tasks)``, today
    ``M2DINO._routing(tasks, device)``."""
    public = _public(model, "routing")
    return public(list(tasks)) if public else model._routing(list(tasks), model.task_embedding.weight.device)


def forward_features(model: M2DINO, pixel_values: torch.Tensor, task: str) -> BackboneOutput:
    """The backbone for one task's batch, with the feature levels the heads read: public
    ``M2DINO.forward_features(pixel_values, task)``, today the backbone called with `routing`."""
    public = _public(model, "forward_features")
    if public:
        return public(pixel_values, task)
    return model.backbone.forward_features(pixel_values, routing(model, [task] * pixel_values.shape[0]),
                                           model.feature_blocks)


def forward_head(model: M2DINO, task: str, features: BackboneOutput, image_size: tuple[int, int]):
    """One task's head on precomputed features: public ``M2DINO.forward_head(task, features,
    image_size)``, today ``M2DINO._run_head``."""
    public = _public(model, "forward_head")
    return (public or model._run_head)(task, features, image_size)


def forward_features_all(model: M2DINO, pixel_values: torch.Tensor, tasks: Sequence[str]) -> BackboneOutput:
    """The backbone part of `M2DINO.forward_all`, one row per task: public ``M2DINO.forward_features_all(
    pixel_values, tasks)``. Until it exists, the same calls as `forward_all` makes before its heads
    (dense blocks before the first MoE block once, the rest on one copy of the hidden state per task)."""
    public = _public(model, "forward_features_all")
    if public:
        return public(pixel_values, list(tasks))
    backbone = model.backbone
    first = model.moe_blocks[0] if model.moe_blocks else backbone.depth
    x, rope, grid = backbone.embed(pixel_values)
    x, shared, _ = backbone.run_blocks(x, rope, grid, None, model.feature_blocks, stop=first)
    n = len(tasks)
    x, routed, aux = backbone.run_blocks(x.expand(n, -1, -1), rope, grid, routing(model, tasks),
                                         model.feature_blocks, start=first)
    levels = {**{b: m.expand(n, -1, -1, -1) for b, m in shared.items()}, **routed}
    return BackboneOutput(backbone.norm(x), grid, backbone.num_prefix_tokens, levels, aux)


def select_rows(features: BackboneOutput, rows: torch.Tensor) -> BackboneOutput:
    """The given batch rows of backbone features: public ``BackboneOutput.select(rows)``, today
    ``m2dino.models.m2dino._select``."""
    if hasattr(BackboneOutput, "select"):
        return features.select(rows)
    from m2dino.models.m2dino import _select

    return _select(features, rows)
