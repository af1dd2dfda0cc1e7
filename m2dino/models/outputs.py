"""Typed model outputs, one per task type, all at model-input resolution / coordinates."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import torch


@dataclass
class TaskOutput:
    task: str
    aux_loss: torch.Tensor | None = field(default=None, kw_only=True)  # MoE load-balancing loss

    def select(self, rows: torch.Tensor) -> "TaskOutput":
        """The given batch rows of every per-sample tensor (the batch's MoE loss is kept)."""
        per_sample = {f.name: getattr(self, f.name)[rows] for f in fields(self)
                      if f.name != "aux_loss" and isinstance(getattr(self, f.name), torch.Tensor)}
        return replace(self, **per_sample)


@dataclass
class SegmentationOutput(TaskOutput):
    logits: torch.Tensor            # B×C×H×W


@dataclass
class ClassificationOutput(TaskOutput):
    logits: torch.Tensor            # B×C

    @property
    def probs(self) -> torch.Tensor:
        return self.logits.softmax(dim=-1)


@dataclass
class DetectionOutput(TaskOutput):
    heatmap_logits: torch.Tensor    # B×K×h×w centre heatmap (K object classes) at `stride`
    size: torch.Tensor              # B×2×h×w box (w, h) as a fraction of the input (w, h)
    offset: torch.Tensor            # B×2×h×w sub-cell centre offset in cells
    stride: int
    image_size: tuple[int, int]     # model input (H, W)


@dataclass
class KeypointOutput(TaskOutput):
    heatmap_logits: torch.Tensor    # B×K×h×w
    keypoints: torch.Tensor         # B×K×2 (x, y) in input pixels (soft-argmax)


@dataclass
class ScalarOutput(TaskOutput):
    value: torch.Tensor             # (B,) in the task's unit


@dataclass
class MultiTaskOutput:
    """A mixed-task batch: each task's output for the samples at ``indices`` (batch positions)."""

    outputs: dict[str, TaskOutput]
    indices: dict[str, torch.Tensor]
    aux_loss: torch.Tensor | None = None

    def __getitem__(self, task: str) -> TaskOutput:
        return self.outputs[task]
