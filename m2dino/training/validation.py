"""In-loop evaluation: predict held-out samples in original pixels and score them with the
benchmark's own scorer (the same code as `m2dino score`), in memory."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..data import Sample
from ..evaluation.ground_truth import GroundTruth
from ..evaluation.scoring import score_submission
from ..evaluation.submission_reader import Submission
from ..models import M2DINO
from ..models.predictions import Prediction, ScalarPrediction, SegmentationPrediction
from ..tasks import TaskType, get_task


class InMemorySubmission(Submission):
    """A `Submission` whose segmentation masks are arrays rather than PNG files."""

    def __init__(self, predictions, masks: dict[str, np.ndarray]) -> None:
        super().__init__(root=Path("."), predictions=predictions)
        self.masks = masks

    def load_mask(self, mask_path: str):
        return self.masks.get(mask_path)


@torch.no_grad()
def predict_samples(model: M2DINO, samples: Sequence[Sample], batch_size: int = 16) -> list[Prediction]:
    """Predictions for samples of one task, mapped back to each sample's original pixels."""
    if not samples:
        return []
    task = samples[0].task
    results: list[Prediction] = []
    for start in range(0, len(samples), batch_size):
        pixel_values, geometries = model.preprocess([s.image for s in samples[start:start + batch_size]])
        output = model(pixel_values, task=task)
        results += [model.postprocess(output, i, geometry) for i, geometry in enumerate(geometries)]
    return results


def _ground_truth(sample: Sample, key: str) -> GroundTruth:
    spec = sample.spec
    if spec.type is TaskType.SEGMENTATION:
        return GroundTruth(spec.id, spec.type, spec.num_classes, key, mask_path=key, mask=sample.label)
    label = sample.label[0] if spec.type is TaskType.DETECTION else sample.label
    return GroundTruth(spec.id, spec.type, spec.num_classes, key, label=label)


def evaluate_model(model: M2DINO, samples_by_task: dict[str, Sequence[Sample]], batch_size: int = 16) -> dict:
    """The benchmark's metrics dict (same keys as `m2dino score`) for held-out samples; scalar
    measurement tasks, which the benchmark lacks, are reported under ``"measurement"`` (MAE)."""
    was_training = model.training
    model.eval()
    try:
        truths, predictions, masks, measurement = [], {}, {}, {}
        for task, samples in samples_by_task.items():
            preds = predict_samples(model, samples, batch_size)
            spec = get_task(task)
            if spec.is_scalar:
                errors = [abs(p.value - s.label) for p, s in zip(preds, samples) if isinstance(p, ScalarPrediction)]
                measurement[task] = {"MAE": float(np.mean(errors)), "unit": spec.scalar_unit,
                                     "num_samples": len(errors)}
                continue
            for index, (sample, pred) in enumerate(zip(samples, preds)):
                key = f"{task}/{index:06d}"
                truths.append(_ground_truth(sample, key))
                if isinstance(pred, SegmentationPrediction):
                    masks[key] = pred.mask
                predictions.setdefault(spec.type, {}).setdefault(task, {})[key] = pred
        metrics = score_submission(truths, InMemorySubmission(predictions, masks)) if truths else {"summary": {}}
        if measurement:
            metrics["measurement"] = measurement
        return metrics
    finally:
        model.train(was_training)


def error_scales(samples_by_task: dict[str, Sequence[Sample]]) -> dict[str, float]:
    """The error that scores 0 for each error-type task: 10% of the mean image diagonal for keypoints
    (MRE), the mean |target| for measurements (MAE)."""
    scales = {}
    for task, samples in samples_by_task.items():
        kind = get_task(task).label_kind
        if kind == "keypoints":
            scales[task] = 0.1 * float(np.mean([np.hypot(*s.original_size) for s in samples]))
        elif kind == "scalar":
            scales[task] = float(np.mean([abs(s.label) for s in samples])) or 1.0
    return scales


def normalised_task_scores(metrics: dict, scales: dict[str, float]) -> dict[str, float]:
    """One number in [0, 1] per task, higher is better, so tasks of different types can be averaged
    to pick the best checkpoint: DSC; mean of accuracy and macro F1; IoU; and for error metrics
    (MRE, MAE) 1 − error / scale floored at 0, with the scales of `error_scales`."""
    scores: dict[str, float] = {}
    for task, result in metrics.get("segmentation", {}).items():
        scores[task] = result["DSC"]
    for task, result in metrics.get("classification", {}).items():
        scores[task] = (result["Accuracy"] + result["F1_macro"]) / 2
    for task, result in metrics.get("detection", {}).items():
        scores[task] = result["IoU"]
    for task, result in metrics.get("regression", {}).items():
        scores[task] = max(0.0, 1.0 - result["MRE"] / scales[task])
    for task, result in metrics.get("measurement", {}).items():
        scores[task] = max(0.0, 1.0 - result["MAE"] / scales[task])
    return scores
