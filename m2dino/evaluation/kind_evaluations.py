"""The evaluation's one per-kind table, keyed by the label kind (`m2dino.tasks.label_kinds`): where
its predictions live in a submission, how an entry is written and parsed, how a task of that kind is
scored, its metrics.json section and its normalised score. Its headline metrics are the kind's own
(`LabelKind.headline_metrics`).

Adding a label kind to the evaluation is one `KindEvaluation` entry here (plus its scorer in
`m2dino.evaluation.scoring.per_task`).

Submission files (the benchmark's three plus our documented extension)::

    classification_predictions.json  [{"image_path", "task_id", "predicted_class", "predicted_probs"}]
    detection_predictions.json       [{"image_path", "task_id", "bbox_pixels", "boxes_pixels", "scores"}]
    regression_predictions.json      [{"image_path", "task_id", "predicted_points_pixels"}]
    measurement_predictions.json     [{"image_path", "task_id", "predicted_value", "unit"}]   (m2dino's extension)
    <mask_path without "../">        one gray PNG per segmentation image, value = class index

``boxes_pixels`` and ``scores`` (every box, best first, for AP) are our additions; the challenge's
evaluator reads ``bbox_pixels`` only. Scalar measurements (e.g. head circumference in mm) have no
place in the challenge's format, so they get their own file, scored by absolute and relative error.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from ..models.predictions import (
    ClassificationPrediction,
    DetectionPrediction,
    KeypointPrediction,
    Prediction,
    ScalarPrediction,
    SegmentationPrediction,
)
from ..tasks import KINDS
from .entries import Entry, InvalidPrediction
from .scoring import per_task


def _number_list(value: object) -> np.ndarray | None:
    if not isinstance(value, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return None
    return np.asarray(value, dtype=np.float64)


# ----------------------------------------------------------------------------- entries
def _class_entry(prediction: ClassificationPrediction) -> dict:
    return {"predicted_class": int(prediction.class_index),
            "predicted_probs": np.asarray(prediction.probs, dtype=np.float64).ravel().tolist()}


def _parse_class(entry: dict) -> Entry:
    label = entry["predicted_class"]
    if isinstance(label, bool) or not isinstance(label, (int, float)) or not float(label).is_integer():
        return InvalidPrediction(f"predicted_class must be an integer, got {label!r}")
    probs = entry.get("predicted_probs")
    if probs is not None:
        probs = _number_list(probs)
        if probs is None:
            return InvalidPrediction("predicted_probs must be a list of numbers")
    return ClassificationPrediction(int(label), probs)


def _boxes_entry(prediction: DetectionPrediction) -> dict | None:
    boxes = np.asarray(prediction.boxes, dtype=np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return None
    return {"bbox_pixels": boxes[0].tolist(), "boxes_pixels": boxes.tolist(),
            "scores": np.asarray(prediction.scores, dtype=np.float64).ravel().tolist()}


def _parse_boxes(entry: dict) -> Entry:
    box = _number_list(entry["bbox_pixels"])
    if box is None or box.shape != (4,) or not np.isfinite(box).all():
        return InvalidPrediction(f"bbox_pixels must be 4 finite numbers, got {entry['bbox_pixels']!r}")
    if "boxes_pixels" not in entry and "scores" not in entry:
        # The challenge's format has no score: AP cannot rank this box (NaN score).
        return DetectionPrediction(box[None], np.array([math.nan]), np.zeros(1, dtype=np.int64))
    boxes, scores = entry.get("boxes_pixels"), _number_list(entry.get("scores"))
    boxes = np.asarray(boxes, dtype=np.float64) if isinstance(boxes, list) and all(
        _number_list(b) is not None for b in boxes) else None
    if boxes is None or scores is None or boxes.shape != (len(scores), 4) or not np.array_equal(boxes[0], box):
        return InvalidPrediction("boxes_pixels and scores must be n×4 boxes and n scores, best first, "
                                 "with boxes_pixels[0] equal to bbox_pixels")
    return DetectionPrediction(boxes, scores, np.zeros(len(scores), dtype=np.int64))


def _points_entry(prediction: KeypointPrediction) -> dict:
    points = np.asarray(prediction.points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"expected K×2 keypoints, got shape {points.shape}")
    return {"predicted_points_pixels": points.ravel().tolist()}


def _parse_points(entry: dict) -> Entry:
    points = _number_list(entry["predicted_points_pixels"])
    if points is None or points.size == 0 or points.size % 2 or not np.isfinite(points).all():
        return InvalidPrediction("predicted_points_pixels must be a flat list [x1, y1, x2, y2, ...] of finite numbers")
    return KeypointPrediction(points.reshape(-1, 2))


def _value_entry(prediction: ScalarPrediction) -> dict:
    return {"predicted_value": float(prediction.value), "unit": prediction.unit}


def _parse_value(entry: dict) -> Entry:
    value = entry["predicted_value"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return InvalidPrediction(f"predicted_value must be a finite number, got {value!r}")
    unit = entry.get("unit")
    return ScalarPrediction(float(value), unit if isinstance(unit, str) else None)


# ------------------------------------------------------------------ normalised scores
# One number in [0, 1] per task, higher is better, so tasks of different kinds can be averaged
# (the trainer keeps the best checkpoint by their mean). ``scale`` is the error that scores 0.
def _metric(name: str, result: dict, scale: float | None) -> float:
    return result[name]


def _accuracy_and_f1(result: dict, scale: float | None) -> float:
    return (result["Accuracy"] + result["F1_macro"]) / 2


def _error(name: str, result: dict, scale: float | None) -> float:
    return max(0.0, 1.0 - result[name] / scale)


def _tenth_of_diagonal(labels: list, sizes: list[tuple[int, int]]) -> float:
    """Keypoints: an MRE of 10% of the mean image diagonal scores 0."""
    return 0.1 * float(np.mean([np.hypot(*size) for size in sizes]))


def _mean_magnitude(labels: list, sizes: list[tuple[int, int]]) -> float:
    """Measurements: an error as large as the mean |value| scores 0."""
    return float(np.mean(np.abs(labels))) or 1.0


# ---------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class KindEvaluation:
    kind: str                        # the label kind (`m2dino.tasks.label_kinds`)
    section: str                     # its section of metrics.json
    prediction_type: type
    file: str | None                 # submission JSON file; None: one PNG per image
    key: str | None                  # the entry's prediction key (an entry without it is malformed)
    to_entry: Callable[[Prediction], dict | None] | None
    parse: Callable[[dict], Entry] | None
    score: Callable
    additional: tuple[str, ...] = ()  # reported beside the headline metrics
    normalised: Callable[[dict, float | None], float] = partial(_metric, "DSC")
    error_scale: Callable[[list, list[tuple[int, int]]], float] | None = None  # (labels, image sizes) -> scale
    official: bool = True            # part of the challenge's format and scorer
    lower_is_better: frozenset[str] = frozenset()

    @property
    def headline(self) -> tuple[str, ...]:
        """The metrics the summary averages: the label kind's headline metrics."""
        return KINDS[self.kind].headline_metrics


EVALUATIONS: dict[str, KindEvaluation] = {e.kind: e for e in (
    KindEvaluation("mask", "segmentation", SegmentationPrediction, None, None, None, None,
                   per_task.score_segmentation, ("HD95", "NSD"),
                   normalised=partial(_metric, "DSC"), lower_is_better=frozenset({"HD", "HD95"})),
    KindEvaluation("class", "classification", ClassificationPrediction, "classification_predictions.json",
                   "predicted_class", _class_entry, _parse_class, per_task.score_classification,
                   ("AUC_present_classes",), normalised=_accuracy_and_f1),
    KindEvaluation("boxes", "detection", DetectionPrediction, "detection_predictions.json", "bbox_pixels",
                   _boxes_entry, _parse_boxes, per_task.score_detection, ("AP50",),
                   normalised=partial(_metric, "IoU")),
    KindEvaluation("keypoints", "regression", KeypointPrediction, "regression_predictions.json",
                   "predicted_points_pixels", _points_entry, _parse_points, per_task.score_regression,
                   normalised=partial(_error, "MRE"), error_scale=_tenth_of_diagonal,
                   lower_is_better=frozenset({"MRE"})),
    KindEvaluation("scalar", "measurement", ScalarPrediction, "measurement_predictions.json", "predicted_value",
                   _value_entry, _parse_value, per_task.score_measurement,
                   normalised=partial(_error, "MAE"), error_scale=_mean_magnitude, official=False,
                   lower_is_better=frozenset({"MAE", "relative_error"})),
)}
BY_SECTION: dict[str, KindEvaluation] = {e.section: e for e in EVALUATIONS.values()}
BY_PREDICTION: dict[type, KindEvaluation] = {e.prediction_type: e for e in EVALUATIONS.values()}
LOWER_IS_BETTER = frozenset().union(*(e.lower_is_better for e in EVALUATIONS.values()))
