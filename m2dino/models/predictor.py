"""Inference helpers kept apart from the model (as in segment-anything): images in, typed
predictions in the image's ORIGINAL pixel grid out."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..image import ImageLike, ResizeGeometry, resize_image, to_rgb_uint8
from ..tasks import TaskSpec, TaskType
from .config import M2DINOConfig
from .heads.detection import DetectionHead
from .outputs import (ClassificationOutput, DetectionOutput, KeypointOutput, ScalarOutput, SegmentationOutput,
                      TaskOutput)
from .predictions import (ClassificationPrediction, DetectionPrediction, KeypointPrediction, Prediction,
                          ScalarPrediction, SegmentationPrediction)


def normalize(images: np.ndarray, mean, std) -> torch.Tensor:
    """uint8 B×H×W×3 → float B×3×H×W normalised with the backbone's pretrained statistics."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def prepare_batch(images: list[ImageLike], config: M2DINOConfig, device: torch.device
                  ) -> tuple[torch.Tensor, list[ResizeGeometry]]:
    arrays, geometries = [], []
    for i, image in enumerate(images):
        array = to_rgb_uint8(image, name=None if len(images) == 1 else f"image {i}")
        geometry = ResizeGeometry.create(array.shape[:2], config.image_size, config.resize_mode)
        arrays.append(resize_image(array, geometry))
        geometries.append(geometry)
    return normalize(np.stack(arrays), config.mean, config.std).to(device), geometries


def to_prediction(output: TaskOutput, index: int, geometry: ResizeGeometry, spec: TaskSpec,
                  top_n: int | None = None) -> Prediction:
    """Sample ``index`` of ``output`` mapped back through ``geometry`` to original pixels."""
    height, width = geometry.original_size
    if isinstance(output, SegmentationOutput):
        x0, y0, x1, y1 = geometry.content_box
        logits = output.logits[index:index + 1, :, y0:y1, x0:x1].float()
        logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
        return SegmentationPrediction(mask=logits[0].argmax(0).to(torch.uint8).cpu().numpy())
    if isinstance(output, ClassificationOutput):
        probs = output.probs[index].float().cpu().numpy()
        return ClassificationPrediction(class_index=int(probs.argmax()), probs=probs)
    if isinstance(output, DetectionOutput):
        boxes, scores, labels = DetectionHead.decode(output, top_n or spec.max_boxes)
        original = geometry.boxes_to_original(boxes[index].cpu().numpy())
        original[:, 0::2] = original[:, 0::2].clip(0, width)
        original[:, 1::2] = original[:, 1::2].clip(0, height)
        return DetectionPrediction(boxes=original, scores=scores[index].cpu().numpy(),
                                   labels=labels[index].cpu().numpy())
    if isinstance(output, KeypointOutput):
        return KeypointPrediction(points=geometry.points_to_original(output.keypoints[index].cpu().numpy()))
    if isinstance(output, ScalarOutput):
        return ScalarPrediction(value=float(output.value[index]), unit=spec.scalar_unit)
    raise TypeError(f"no prediction mapping for {type(output).__name__} (task type {TaskType(spec.type).value})")
