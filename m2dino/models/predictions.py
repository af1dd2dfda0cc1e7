"""Typed predictions in ORIGINAL image pixels: what `M2DINO.predict` returns and the submission writer takes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import numpy as np


@dataclass
class SegmentationPrediction:
    mask: np.ndarray           # H×W uint8 at the original size, value = class index
    probs: np.ndarray | None = None  # C×H×W float32 class probabilities (optional, large)


@dataclass
class ClassificationPrediction:
    class_index: int
    probs: np.ndarray          # (C,) float, sums to 1


@dataclass
class DetectionPrediction:
    boxes: np.ndarray          # n×4 float (x_min, y_min, x_max, y_max), best first
    scores: np.ndarray         # (n,) float in [0, 1]
    labels: np.ndarray         # (n,) int object class

    @property
    def best_box(self) -> np.ndarray:
        if len(self.boxes) == 0:
            raise ValueError("detection prediction holds no box")
        return self.boxes[0]


@dataclass
class KeypointPrediction:
    points: np.ndarray         # K×2 float (x, y)


@dataclass
class ScalarPrediction:
    value: float
    unit: str | None = None


Prediction = Union[SegmentationPrediction, ClassificationPrediction, DetectionPrediction,
                   KeypointPrediction, ScalarPrediction]
