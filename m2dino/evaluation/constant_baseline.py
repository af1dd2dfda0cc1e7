"""The constant predictor: what a model that ignores the image scores, the floor a task's numbers are read against.

Fitted on a task's training labels, it answers every image with the same prediction: the per-pixel
majority class of the training masks, the majority class, the mean box, the mean keypoints or the
mean value. Masks, boxes and keypoints are averaged on one letterboxed grid (every training label is
letterboxed onto it) and mapped back to each image's own pixels, so images of any size get the
prior in the right place.

    predict = fit_constant_predictor(spec, training_samples, grid=(128, 128))
    prediction = predict(ResizeGeometry.create(image_size, (128, 128), "letterbox"))

A release card (`m2dino.release`) and `benchmarks/aggregation.py` both score it beside the models.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from ..image import ResizeGeometry
from ..models.predictions import (
    ClassificationPrediction,
    DetectionPrediction,
    KeypointPrediction,
    Prediction,
    ScalarPrediction,
    SegmentationPrediction,
)
from ..tasks.spec import TaskSpec

ConstantPredictor = Callable[[ResizeGeometry], Prediction]


def fit_constant_predictor(spec: TaskSpec, samples: Iterable, grid: tuple[int, int]) -> ConstantPredictor:
    """The constant predictor of task ``spec`` fitted on ``samples`` (objects with ``image`` and
    ``label``, e.g. `m2dino.data.Sample`). A sample whose image is not ``grid``-sized has its label
    letterboxed onto ``grid`` first; one already on it (pre-resized training data) is used as it is.
    The returned function maps an image's geometry (original → ``grid``) to the prediction."""
    labels = [_on_grid(spec, sample, grid) for sample in samples]
    if not labels:
        raise ValueError(f"{spec.id}: no training samples to fit the constant predictor on")
    return CONSTANT_FITS[spec.label_kind.name](spec, labels)


def _on_grid(spec: TaskSpec, sample, grid: tuple[int, int]):
    size = tuple(sample.image.shape[:2])
    if size == tuple(grid):
        return sample.label
    return spec.label_kind.resize(sample.label, ResizeGeometry.create(size, grid, "letterbox"))


# ------------------------------------------------------------------ one fit per label kind
def _fit_mask(spec: TaskSpec, labels: list) -> ConstantPredictor:
    counts = np.zeros((spec.num_classes, *labels[0].shape), dtype=np.int64)
    for label in labels:  # a running count: the same argmax as stacking every mask, in bounded memory
        for c in range(spec.num_classes):
            counts[c] += label == c
    prior = counts.argmax(0).astype(np.uint8)
    return lambda geometry: SegmentationPrediction(spec.label_kind.to_original(prior, geometry))


def _fit_class(spec: TaskSpec, labels: list) -> ConstantPredictor:
    frequency = np.bincount([int(label) for label in labels], minlength=spec.num_classes) / len(labels)
    return lambda geometry: ClassificationPrediction(int(frequency.argmax()), frequency.astype(np.float64))


def _fit_boxes(spec: TaskSpec, labels: list) -> ConstantPredictor:
    # The first box of each image: the benchmark's detection tasks have one box per image.
    mean_box = np.mean([np.asarray(label, dtype=float).reshape(-1, 4)[0] for label in labels], axis=0)
    return lambda geometry: DetectionPrediction(geometry.boxes_to_original(mean_box[None]), np.ones(1),
                                                np.zeros(1, int))


def _fit_keypoints(spec: TaskSpec, labels: list) -> ConstantPredictor:
    mean_points = np.mean([np.asarray(label, dtype=float) for label in labels], axis=0)
    return lambda geometry: KeypointPrediction(geometry.points_to_original(mean_points))


def _fit_scalar(spec: TaskSpec, labels: list) -> ConstantPredictor:
    mean_value = float(np.mean(labels))
    return lambda geometry: ScalarPrediction(mean_value, spec.scalar_unit)


# Label kind → its fit (`m2dino.tasks.label_kinds`; tests/evaluation/test_kind_tables.py style: one per kind).
CONSTANT_FITS: dict[str, Callable[[TaskSpec, list], ConstantPredictor]] = {
    "mask": _fit_mask, "class": _fit_class, "boxes": _fit_boxes, "keypoints": _fit_keypoints, "scalar": _fit_scalar,
}
