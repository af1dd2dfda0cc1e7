"""The challenge's submission layout and a writer for it, from typed predictions.

```
<out>/classification_predictions.json  [{"image_path", "task_id", "predicted_class", "predicted_probs"}]
<out>/detection_predictions.json       [{"image_path", "task_id", "bbox_pixels", "boxes_pixels", "scores"}]
<out>/regression_predictions.json      [{"image_path", "task_id", "predicted_points_pixels"}]
<out>/<mask_path without "../">        one gray PNG per segmentation image, value = class index
```
``boxes_pixels`` and ``scores`` (every box, best first, for AP) are our additions; the challenge's
evaluator reads ``bbox_pixels`` only and ignores other keys.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from ..models.predictions import (ClassificationPrediction, DetectionPrediction, KeypointPrediction, Prediction,
                                  SegmentationPrediction)
from ..tasks import TaskType, UnknownTaskError, get_task

PREDICTION_FILES: dict[TaskType, str] = {
    TaskType.CLASSIFICATION: "classification_predictions.json",
    TaskType.DETECTION: "detection_predictions.json",
    TaskType.REGRESSION: "regression_predictions.json",
}
# The key holding the prediction itself in each file; an entry without it is malformed.
PREDICTION_KEYS: dict[TaskType, str] = {
    TaskType.CLASSIFICATION: "predicted_class",
    TaskType.DETECTION: "bbox_pixels",
    TaskType.REGRESSION: "predicted_points_pixels",
}
_PREDICTION_TYPES: dict[type, TaskType] = {
    SegmentationPrediction: TaskType.SEGMENTATION,
    ClassificationPrediction: TaskType.CLASSIFICATION,
    DetectionPrediction: TaskType.DETECTION,
    KeypointPrediction: TaskType.REGRESSION,
}


def prediction_mask_path(mask_path: str) -> PurePosixPath:
    """Where a segmentation prediction lives inside a submission: the CSV's ``mask_path`` with every
    ``../`` removed, exactly as the challenge's evaluator looks it up (``replace('../', '')``)."""
    relative = PurePosixPath(mask_path.replace("../", ""))
    if not mask_path or relative.is_absolute() or ".." in relative.parts:
        raise ValueError(f"mask_path {mask_path!r} does not name a file inside the submission folder")
    return relative


@dataclass(frozen=True)
class SubmissionEntry:
    """One prediction and the identity of the ground-truth row it answers.

    ``image_path`` is the CSV's string unchanged; ``mask_path`` (the CSV's, segmentation only) says
    where the PNG goes; ``original_size`` (height, width), when given, is checked against the mask.
    """

    task_id: str
    image_path: str
    prediction: Prediction
    mask_path: str | None = None
    original_size: tuple[int, int] | None = None

    @classmethod
    def for_record(cls, record: object, prediction: Prediction) -> "SubmissionEntry":
        """The entry answering an `m2dino.data.fmc.FMCRecord` (its CSV strings and image size)."""
        return cls(record.task_id, record.image_path, prediction, record.mask_path, tuple(record.image_size))


@dataclass
class WrittenSubmission:
    root: Path
    counts: dict[str, int]                                   # entries written per file / "Segmentation"
    skipped: list[str] = field(default_factory=list)         # why an entry was not written


def _task_type(entry: SubmissionEntry) -> TaskType:
    kind = _PREDICTION_TYPES.get(type(entry.prediction))
    if kind is None:
        raise ValueError(f"{entry.task_id} / {entry.image_path}: a {type(entry.prediction).__name__} has no place "
                         "in the benchmark's submission format")
    try:
        expected = get_task(entry.task_id).type
    except UnknownTaskError:
        return kind  # a user's task that is not registered: its prediction type decides
    if expected is not kind:
        raise ValueError(f"{entry.task_id} / {entry.image_path}: task {entry.task_id!r} is {expected.value} "
                         f"but got a {type(entry.prediction).__name__}")
    return kind


def _write_mask(entry: SubmissionEntry, root: Path) -> None:
    if entry.mask_path is None:
        raise ValueError(f"{entry.task_id} / {entry.image_path}: a segmentation entry needs the CSV's mask_path")
    mask = np.asarray(entry.prediction.mask)
    if mask.ndim != 2 or mask.dtype.kind not in "ui" or (mask.size and (mask.min() < 0 or mask.max() > 255)):
        raise ValueError(f"{entry.task_id} / {entry.image_path}: expected an H×W integer mask of class indices "
                         f"0..255, got shape {mask.shape} dtype {mask.dtype}")
    if entry.original_size is not None and mask.shape != tuple(entry.original_size):
        raise ValueError(f"{entry.task_id} / {entry.image_path}: mask of size {mask.shape} but the image is "
                         f"{tuple(entry.original_size)}; predictions must be at the original size")
    path = root / prediction_mask_path(entry.mask_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask.astype(np.uint8)).save(path)  # uint8 H×W is mode L


def _json_entry(entry: SubmissionEntry, kind: TaskType) -> dict | None:
    base = {"image_path": entry.image_path, "task_id": entry.task_id}
    prediction = entry.prediction
    if kind is TaskType.CLASSIFICATION:
        return {**base, "predicted_class": int(prediction.class_index),
                "predicted_probs": np.asarray(prediction.probs, dtype=np.float64).ravel().tolist()}
    if kind is TaskType.DETECTION:
        boxes = np.asarray(prediction.boxes, dtype=np.float64).reshape(-1, 4)
        if len(boxes) == 0:
            return None
        return {**base, "bbox_pixels": boxes[0].tolist(), "boxes_pixels": boxes.tolist(),
                "scores": np.asarray(prediction.scores, dtype=np.float64).ravel().tolist()}
    points = np.asarray(prediction.points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"{entry.task_id} / {entry.image_path}: expected K×2 keypoints, got shape {points.shape}")
    return {**base, "predicted_points_pixels": points.ravel().tolist()}


def write_submission(entries: Iterable[SubmissionEntry], out_dir: str | Path) -> WrittenSubmission:
    """Write the benchmark's submission folder: the three JSON files (always, possibly empty lists)
    and one gray PNG per segmentation entry. A detection without any box is not written (the scorer
    then counts that image as missing) and is listed in ``skipped``."""
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    files: dict[TaskType, list[dict]] = {kind: [] for kind in PREDICTION_FILES}
    counts = {name: 0 for name in PREDICTION_FILES.values()} | {"Segmentation": 0}
    skipped: list[str] = []
    seen: set[tuple[str, str]] = set()
    for entry in entries:
        key = (entry.task_id, entry.image_path)
        if key in seen:
            raise ValueError(f"{entry.task_id} / {entry.image_path}: two predictions for the same image")
        seen.add(key)
        kind = _task_type(entry)
        if kind is TaskType.SEGMENTATION:
            _write_mask(entry, root)
            counts["Segmentation"] += 1
            continue
        record = _json_entry(entry, kind)
        if record is None:
            skipped.append(f"{entry.task_id} / {entry.image_path}: detection without any box")
            continue
        files[kind].append(record)
        counts[PREDICTION_FILES[kind]] += 1
    for kind, name in PREDICTION_FILES.items():
        (root / name).write_text(json.dumps(files[kind], indent=1))
    return WrittenSubmission(root, counts, skipped)
