"""In-loop evaluation: predict held-out samples in original pixels and score them with the
benchmark's own scorer (the same code as `m2dino score`), in memory."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..data import Sample
from ..evaluation.ground_truth import GroundTruth
from ..evaluation.kind_evaluations import BY_SECTION, EVALUATIONS
from ..evaluation.scoring.per_submission import score_submission
from ..evaluation.submission import prediction_mask_path
from ..evaluation.submission_reader import Submission
from ..models import M2DINO
from ..models.batch_prediction import predict_batches
from ..models.predictions import SegmentationPrediction
from ..tasks import get_task


class InMemorySubmission(Submission):
    """A `Submission` whose segmentation masks are arrays rather than PNG files."""

    def __init__(self, predictions, masks: dict[str, np.ndarray]) -> None:
        super().__init__(root=Path("."), predictions=predictions)
        self.masks = masks

    def load_mask(self, mask_path: str):
        return self.masks.get(mask_path)

    def mask_files(self) -> set[str]:
        return {prediction_mask_path(key).as_posix() for key in self.masks}


def sample_ground_truth(sample: Sample, key: str) -> GroundTruth:
    """The scorer's ground truth for a `Sample`, under ``key`` (its image_path, and mask_path for masks)."""
    spec = sample.spec
    kind = spec.label_kind
    common = dict(task_id=spec.id, kind=kind.name, num_classes=spec.num_classes, image_path=key,
                  image_size=sample.original_size)
    if kind.stored_as_file:
        return GroundTruth(**common, mask_path=key, mask=sample.label)
    return GroundTruth(**common, label=kind.row_label(sample.label))


class Validation(NamedTuple):
    """What one pass over held-out samples gives: the metrics dict (same keys as `m2dino score`) and
    each error-metric task's error scale (`error_scales`)."""

    metrics: dict
    error_scales: dict[str, float]


def evaluate_model(model: M2DINO, samples_by_task: dict[str, Sequence[Sample]], batch_size: int = 16) -> dict:
    """The metrics dict (same keys as `m2dino score`) for held-out samples, scored in memory."""
    return validate(model, samples_by_task, batch_size).metrics


def validate(model: M2DINO, samples_by_task: dict[str, Sequence[Sample]], batch_size: int = 16) -> Validation:
    """`evaluate_model`'s metrics and the error scales, from one pass: a lazy validation set decodes
    every sample at each iteration, and the scales need the same labels and sizes the scorer reads."""
    truths, predictions, masks, scales = [], {}, {}, {}
    for task, samples in samples_by_task.items():
        kind = model.task_spec(task).label_kind.name
        labels, sizes = [], []
        for index, (pred, sample) in enumerate(_predicted(model, samples, task, batch_size)):
            key = f"{task}/{index:06d}"
            truths.append(sample_ground_truth(sample, key))
            labels.append(sample.label)
            sizes.append(sample.original_size)
            if isinstance(pred, SegmentationPrediction):
                masks[key] = pred.mask
            predictions.setdefault(kind, {}).setdefault(task, {})[key] = pred
        scale = _error_scale(task, labels, sizes)
        if scale is not None:
            scales[task] = scale
    metrics = score_submission(truths, InMemorySubmission(predictions, masks)) if truths else {"summary": {}}
    return Validation(metrics, scales)


def _predicted(model: M2DINO, samples: Sequence[Sample], task: str, batch_size: int):
    """(prediction, sample) in order, each sample decoded once: a lazy validation set decodes on
    every iteration, so the images and the ground truth come from the same pass."""
    decoded: deque[Sample] = deque()  # the samples of the batch being predicted

    def images():
        for sample in samples:
            decoded.append(sample)
            yield sample.image

    for prediction in predict_batches(model, images(), task, batch_size):
        yield prediction, decoded.popleft()


def error_scales(samples_by_task: dict[str, Sequence[Sample]]) -> dict[str, float]:
    """The error that scores 0 for each task with an error metric (see `KindEvaluation.error_scale`)."""
    scales = {}
    for task, samples in samples_by_task.items():
        if EVALUATIONS[get_task(task).label_kind.name].error_scale is not None:
            decoded = list(samples)  # once: a lazy collection decodes at every iteration
            scales[task] = _error_scale(task, [s.label for s in decoded], [s.original_size for s in decoded])
    return scales


def _error_scale(task: str, labels: list, sizes: list[tuple[int, int]]) -> float | None:
    scale = EVALUATIONS[get_task(task).label_kind.name].error_scale
    return None if scale is None else scale(labels, sizes)


def normalised_task_scores(metrics: dict, scales: dict[str, float]) -> dict[str, float]:
    """One number in [0, 1] per task, higher is better, from its STRICT values (a missing or invalid
    prediction counts as a failure), so tasks of different kinds can be averaged to pick the best
    checkpoint (see `KindEvaluation.normalised`)."""
    strict = {task: extra["strict"] for task, extra in metrics.get("summary", {}).get("additional_metrics", {}).items()}
    return {task: BY_SECTION[section].normalised(strict[task], scales.get(task))
            for section in BY_SECTION for task in metrics.get(section, {})}
