"""The m2dino calls the speed benchmarks time, in one place: each is a public model method (they
were private before issue 9, item 8), named here so a benchmark reads the same as the library."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from m2dino.models import M2DINO, BackboneOutput, TaskRouting


def routing(model: M2DINO, tasks: Sequence[str]) -> TaskRouting:
    """Routing for a batch with one task id per sample."""
    return model.routing(tasks)


def forward_features(model: M2DINO, pixel_values: torch.Tensor, task: str) -> BackboneOutput:
    """The backbone for one task's batch, with the feature levels its head reads."""
    return model.forward_features(pixel_values, task)


def forward_head(model: M2DINO, task: str, features: BackboneOutput, image_size: tuple[int, int]):
    """One task's head on precomputed features."""
    return model.forward_head(task, features, image_size)


def forward_features_all(model: M2DINO, pixel_values: torch.Tensor, tasks: Sequence[str]) -> BackboneOutput:
    """The backbone part of `M2DINO.forward_all`: one row per task."""
    return model.forward_features_all(pixel_values, tasks)


def select_rows(features: BackboneOutput, rows: torch.Tensor) -> BackboneOutput:
    """The given batch rows of backbone features."""
    return features.select(rows)
