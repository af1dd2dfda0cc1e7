"""Predictions as JSON-ready dicts, in original pixels: what `m2dino predict` and the demo write.

Masks are stored per class as COCO's uncompressed run-length encoding (column-major runs starting
with background), so one JSON file holds everything and `pycocotools.mask.frPyObjects` reads it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from ..models.predictions import (
    ClassificationPrediction,
    DetectionPrediction,
    KeypointPrediction,
    Prediction,
    ScalarPrediction,
    SegmentationPrediction,
)
from ..tasks import TaskSpec
from .overlay import describe, keypoint_distance


def rle_encode(binary: np.ndarray) -> dict:
    """H×W bool → ``{"size": [H, W], "counts": [...]}`` (COCO uncompressed RLE)."""
    flat = np.asarray(binary, dtype=bool).ravel(order="F")
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0] + counts  # runs start with background
    return {"size": list(binary.shape), "counts": counts}


def rle_decode(rle: Mapping) -> np.ndarray:
    """The inverse of `rle_encode`."""
    height, width = rle["size"]
    values = np.zeros(len(rle["counts"]), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, rle["counts"])
    if flat.size != height * width:
        raise ValueError(f"RLE counts sum to {flat.size}; expected {height}×{width} = {height * width}")
    return flat.reshape((height, width), order="F")


def _segmentation(p: SegmentationPrediction, spec: TaskSpec) -> dict:
    mask = np.asarray(p.mask)
    classes = [{"index": c, "name": spec.class_names[c], "area_px": int((mask == c).sum()),
                "rle": rle_encode(mask == c)} for c in range(1, spec.num_classes)]
    return {"height": mask.shape[0], "width": mask.shape[1], "classes": classes}


def _classification(p: ClassificationPrediction, spec: TaskSpec) -> dict:
    return {"class_index": p.class_index, "class_name": spec.class_names[p.class_index],
            "probabilities": {name: float(prob) for name, prob in zip(spec.class_names, p.probs)}}


def _detection(p: DetectionPrediction, spec: TaskSpec) -> dict:
    return {"boxes": [{"box_xyxy": [float(v) for v in box], "score": float(score), "label": int(label),
                       "label_name": spec.class_names[int(label)]}
                      for box, score, label in zip(p.boxes, p.scores, p.labels)]}


def _keypoints(p: KeypointPrediction, spec: TaskSpec) -> dict:
    result: dict = {"points_xy": [[float(x), float(y)] for x, y in np.asarray(p.points)]}
    distance = keypoint_distance(p)
    if distance is not None:
        result["distance_px"] = distance
    return result


def _scalar(p: ScalarPrediction, spec: TaskSpec) -> dict:
    return {"value": float(p.value), "unit": p.unit or spec.scalar_unit}


# prediction type -> (the label kind's name, its fields)
EXPORTERS: dict[type, tuple[str, Callable[[Prediction, TaskSpec], dict]]] = {
    SegmentationPrediction: ("mask", _segmentation),
    ClassificationPrediction: ("class", _classification),
    DetectionPrediction: ("boxes", _detection),
    KeypointPrediction: ("keypoints", _keypoints),
    ScalarPrediction: ("scalar", _scalar),
}


def prediction_to_dict(prediction: Prediction, spec: TaskSpec) -> dict:
    """``{"task", "label_kind", "summary", <the kind's fields>}``; coordinates in original pixels (x, y)."""
    if type(prediction) not in EXPORTERS:
        raise TypeError(f"cannot export a {type(prediction).__name__}; expected one of "
                        f"{', '.join(t.__name__ for t in EXPORTERS)}")
    kind, exporter = EXPORTERS[type(prediction)]
    return {"task": spec.id, "label_kind": kind, "summary": describe(prediction, spec), **exporter(prediction, spec)}


def predictions_to_dict(predictions: Mapping[str, Prediction], spec_for: Callable[[str], TaskSpec],
                        source: str | None = None, image_size: tuple[int, int] | None = None) -> dict:
    """One image's predictions: ``{"image", "height", "width", "predictions": {task: ...}}``."""
    result: dict = {}
    if source is not None:
        result["image"] = source
    if image_size is not None:
        result["height"], result["width"] = image_size
    result["predictions"] = {task: prediction_to_dict(p, spec_for(task)) for task, p in predictions.items()}
    return result
