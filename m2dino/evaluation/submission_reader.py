"""Reading a submission folder back: typed predictions per task, bad entries kept as `InvalidPrediction`.

A file that cannot be a submission (not JSON, not a list, an entry without its identity or its
prediction key) is an error naming the file and entry index. A well-formed entry whose values are
unusable (a class that is not an integer, a box of three numbers) is kept as an `InvalidPrediction`
so the scorer can count it for its task instead of stopping the whole run.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..models.predictions import ClassificationPrediction, DetectionPrediction, KeypointPrediction, Prediction
from ..tasks import TaskType
from .submission import PREDICTION_FILES, PREDICTION_KEYS, prediction_mask_path


class SubmissionFormatError(ValueError):
    """A submission file that cannot be read as the benchmark's format."""


@dataclass(frozen=True)
class InvalidPrediction:
    """A prediction that is present but cannot be scored, and why."""

    reason: str


Entry = Prediction | InvalidPrediction


@dataclass
class Submission:
    root: Path
    # task type -> task id -> image_path (CSV string) -> prediction. `ClassificationPrediction.probs`
    # is None when the entry gave no predicted_probs.
    predictions: dict[TaskType, dict[str, dict[str, Entry]]]
    duplicates: Counter = field(default_factory=Counter)    # task id -> repeated entries (the last one is kept)
    absent_files: list[str] = field(default_factory=list)   # prediction files not in the folder

    def task_predictions(self, kind: TaskType, task_id: str) -> dict[str, Entry]:
        return self.predictions.get(kind, {}).get(task_id, {})

    def load_mask(self, mask_path: str) -> np.ndarray | InvalidPrediction | None:
        """The predicted mask for the ground-truth ``mask_path``: None when there is no file, an
        `InvalidPrediction` when it is not an 8-bit gray image."""
        relative = prediction_mask_path(mask_path)
        path = self.root / relative
        if not path.is_file():
            return None
        try:
            with Image.open(path) as image:
                image.load()
                if image.mode != "L":
                    return InvalidPrediction(f"{relative}: {image.mode} image; expected an 8-bit gray PNG")
                return np.asarray(image)
        except (UnidentifiedImageError, OSError, SyntaxError) as err:
            return InvalidPrediction(f"{relative}: not a readable image ({err})")


def _number_list(value: object) -> np.ndarray | None:
    if not isinstance(value, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return None
    return np.asarray(value, dtype=np.float64)


def _parse_classification(entry: dict) -> Entry:
    label = entry["predicted_class"]
    if isinstance(label, bool) or not isinstance(label, (int, float)) or not float(label).is_integer():
        return InvalidPrediction(f"predicted_class must be an integer, got {label!r}")
    probs = entry.get("predicted_probs")
    if probs is not None:
        probs = _number_list(probs)
        if probs is None:
            return InvalidPrediction("predicted_probs must be a list of numbers")
    return ClassificationPrediction(int(label), probs)


def _parse_detection(entry: dict) -> Entry:
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


def _parse_regression(entry: dict) -> Entry:
    points = _number_list(entry["predicted_points_pixels"])
    if points is None or points.size == 0 or points.size % 2 or not np.isfinite(points).all():
        return InvalidPrediction("predicted_points_pixels must be a flat list [x1, y1, x2, y2, ...] of finite numbers")
    return KeypointPrediction(points.reshape(-1, 2))


_PARSERS = {TaskType.CLASSIFICATION: _parse_classification, TaskType.DETECTION: _parse_detection,
            TaskType.REGRESSION: _parse_regression}


def _read_file(path: Path, kind: TaskType, duplicates: Counter) -> dict[str, dict[str, Entry]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SubmissionFormatError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, list):
        raise SubmissionFormatError(f"{path}: expected a JSON list of entries, got {type(data).__name__}")
    key = PREDICTION_KEYS[kind]
    by_task: dict[str, dict[str, Entry]] = {}
    for index, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise SubmissionFormatError(f"{path}: entry {index}: expected an object, got {type(entry).__name__}")
        for name in ("image_path", "task_id"):
            if not isinstance(entry.get(name), str):
                raise SubmissionFormatError(f"{path}: entry {index}: missing or non-string {name!r}")
        if key not in entry:
            raise SubmissionFormatError(f"{path}: entry {index}: missing key {key!r}")
        task = by_task.setdefault(entry["task_id"], {})
        if entry["image_path"] in task:
            duplicates[entry["task_id"]] += 1
        task[entry["image_path"]] = _PARSERS[kind](entry)
    return by_task


def read_submission(path: str | Path) -> Submission:
    """Read a submission folder; a missing JSON file means no predictions of that type."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"submission folder not found: {root}")
    duplicates: Counter = Counter()
    predictions, absent = {}, []
    for kind, name in PREDICTION_FILES.items():
        file = root / name
        if file.is_file():
            predictions[kind] = _read_file(file, kind, duplicates)
        else:
            absent.append(name)
    return Submission(root, predictions, duplicates, absent)
