"""Scoring one task of each type: the challenge's result dict, our additional metrics, and problems.

Every function takes the task's ground-truth rows, that task's predictions and a `TaskProblems` to
fill, and returns ``(challenge_result, additional_metrics)``. Only images with a usable prediction
are scored (``num_samples``), as in the challenge's evaluator; the rest are counted in `problems`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..models.predictions import ClassificationPrediction, DetectionPrediction, KeypointPrediction
from .ground_truth import GroundTruth
from .metrics.classification import label_scores, one_vs_rest_auc
from .metrics.detection import average_precision, box_iou, is_inverted
from .metrics.regression import mean_radial_error
from .metrics.segmentation import class_scores, resize_nearest
from .problems import TaskProblems
from .submission_reader import Entry, InvalidPrediction

PROBABILITY_SUM_TOLERANCE = 1e-3
MaskLoader = Callable[[str], "np.ndarray | InvalidPrediction | None"]


def _usable(entry: Entry | None, expected: type, row: GroundTruth, problems: TaskProblems) -> bool:
    """Count a missing or invalid prediction; True when ``entry`` can be scored."""
    if entry is None:
        problems.add("missing", row.image_path)
        return False
    if isinstance(entry, InvalidPrediction):
        problems.add("invalid", f"{row.image_path}: {entry.reason}")
        return False
    if not isinstance(entry, expected):
        problems.add("invalid", f"{row.image_path}: a {type(entry).__name__}, expected a {expected.__name__}")
        return False
    return True


def count_unexpected(rows: Sequence[GroundTruth], predictions: dict[str, Entry], problems: TaskProblems) -> None:
    known = {row.image_path for row in rows}
    for image_path in predictions:
        if image_path not in known:
            problems.add("unexpected", f"{image_path}: not in the ground truth of this task")


def score_segmentation(rows: Sequence[GroundTruth], load_prediction: MaskLoader, problems: TaskProblems,
                       nsd_tolerance: float = 2.0, progress: bool = False) -> tuple[dict, dict]:
    num_classes = rows[0].num_classes
    totals = {name: np.zeros(num_classes) for name in ("DSC", "HD", "HD95", "NSD")}  # HD95, NSD: NaN at 0
    scored = 0
    for row in tqdm(rows, desc=f"  {rows[0].task_id}", unit="mask", disable=not progress, leave=False):
        pred = load_prediction(row.mask_path)
        if not _usable(pred, np.ndarray, row, problems):
            continue
        gt = row.load_mask()
        if gt.ndim != 2:
            raise ValueError(f"{row.task_id} / {row.mask_path}: ground-truth mask of shape {gt.shape}; expected H×W")
        if pred.shape != gt.shape:
            problems.add("wrong_size", f"{row.mask_path}: prediction W×H {pred.shape[1]}×{pred.shape[0]}, "
                                       f"ground truth {gt.shape[1]}×{gt.shape[0]}")
            pred = resize_nearest(pred, gt.shape)
        if pred.size and int(pred.max()) >= num_classes:
            problems.add("out_of_range", f"{row.mask_path}: mask value {int(pred.max())} >= {num_classes} classes")
        for name, values in class_scores(pred, gt, num_classes, nsd_tolerance).items():
            totals[name] += values
        scored += 1
    if scored == 0:
        return {"DSC": 0.0, "HD": 0.0, "num_samples": 0, "per_class": {}}, {}
    dice, hd, hd95, nsd = (totals[name] / scored for name in ("DSC", "HD", "HD95", "NSD"))
    result = {"DSC": float(dice[1:].mean()), "HD": float(hd[1:].mean()), "num_samples": scored,
              "per_class": {f"class_{c}": {"DSC": float(dice[c]), "HD": float(hd[c])} for c in range(num_classes)}}
    extra = {"HD95": float(hd95[1:].mean()), "NSD": float(nsd[1:].mean()), "nsd_tolerance_px": nsd_tolerance,
             "per_class": {f"class_{c}": {"HD95": float(hd95[c]), "NSD": float(nsd[c])}
                           for c in range(1, num_classes)}}
    return result, extra


def _usable_probs(probs: np.ndarray | None, num_classes: int, image_path: str, problems: TaskProblems) -> bool:
    if probs is None or probs.shape != (num_classes,) or not np.isfinite(probs).all():
        what = "no predicted_probs" if probs is None else (
            f"{probs.size} probabilities for {num_classes} classes" if probs.shape != (num_classes,)
            else "non-finite probabilities")
        problems.add("out_of_range", f"{image_path}: {what} (left out of the AUC)")
        return False
    if abs(float(probs.sum()) - 1.0) > PROBABILITY_SUM_TOLERANCE:
        problems.add("out_of_range", f"{image_path}: probabilities sum to {float(probs.sum()):.4g} (used as given)")
    return True


def score_classification(rows: Sequence[GroundTruth], predictions: dict[str, Entry],
                         problems: TaskProblems) -> tuple[dict, dict]:
    num_classes = rows[0].num_classes
    y_true, y_pred, auc_true, auc_scores = [], [], [], []
    for row in rows:
        pred = predictions.get(row.image_path)
        if not _usable(pred, ClassificationPrediction, row, problems):
            continue
        if not 0 <= pred.class_index < num_classes:
            problems.add("invalid", f"{row.image_path}: predicted_class {pred.class_index} "
                                    f"outside 0..{num_classes - 1}")
            continue
        y_true.append(int(row.label))
        y_pred.append(pred.class_index)
        if _usable_probs(pred.probs, num_classes, row.image_path, problems):
            auc_true.append(int(row.label))
            auc_scores.append(pred.probs)
    count_unexpected(rows, predictions, problems)
    if not y_true:
        return {"AUC": 0.0, "Accuracy": 0.0, "F1_macro": 0.0, "F1_weighted": 0.0, "MCC": 0.0,
                "num_samples": 0, "per_class": {}}, {}
    auc = math.nan
    if auc_true:
        auc, skipped = one_vs_rest_auc(np.array(auc_true), np.stack(auc_scores), num_classes)
        if skipped:
            problems.note(f"AUC: class(es) {skipped} left out (absent from, or alone in, the ground truth "
                          f"of the {len(auc_true)} images with probabilities)")
        if len(auc_true) < len(y_true):
            problems.note(f"AUC over the {len(auc_true)} of {len(y_true)} scored images with usable probabilities")
    else:
        problems.note("AUC: no scored image has usable probabilities")
    scores = label_scores(np.array(y_true), np.array(y_pred), num_classes)
    result = {"AUC": auc, "Accuracy": scores["Accuracy"], "F1_macro": scores["F1_macro"],
              "F1_weighted": scores["F1_weighted"], "MCC": scores["MCC"], "num_samples": len(y_true),
              "per_class": scores["per_class"]}
    return result, {}


def score_detection(rows: Sequence[GroundTruth], predictions: dict[str, Entry],
                    problems: TaskProblems, iou_threshold: float = 0.5) -> tuple[dict, dict]:
    ious, ap_predictions, ap_truths = [], [], []
    for row in rows:
        gt_box = np.asarray(row.label, dtype=np.float64).reshape(4)
        ap_truths.append(gt_box[None])
        pred = predictions.get(row.image_path)
        usable = _usable(pred, DetectionPrediction, row, problems)
        if usable and len(pred.boxes) == 0:
            problems.add("invalid", f"{row.image_path}: no box")
            usable = False
        if not usable:
            ap_predictions.append((np.zeros((0, 4)), np.zeros(0)))
            continue
        if is_inverted(pred.best_box):
            problems.add("out_of_range", f"{row.image_path}: inverted box {pred.best_box.tolist()} (zero area)")
        ious.append(box_iou(pred.best_box, gt_box))
        ap_predictions.append((pred.boxes, pred.scores))
    count_unexpected(rows, predictions, problems)
    if not ious:
        return {"IoU": 0.0, "num_samples": 0}, {}
    # AP ranks boxes by score: without scores (the challenge's format has none) it is undefined.
    scores = np.concatenate([s for _, s in ap_predictions])
    if np.isfinite(scores).all():
        ap = average_precision(ap_predictions, ap_truths, iou_threshold)
    else:
        ap = math.nan
        problems.note("AP50: needs a score per box (boxes_pixels + scores); not computed")
    return {"IoU": float(np.mean(ious)), "num_samples": len(ious)}, {"AP50": ap}


def score_regression(rows: Sequence[GroundTruth], predictions: dict[str, Entry],
                     problems: TaskProblems) -> tuple[dict, dict]:
    errors = []
    for row in rows:
        pred = predictions.get(row.image_path)
        if not _usable(pred, KeypointPrediction, row, problems):
            continue
        gt_points = np.asarray(row.label, dtype=np.float64).reshape(-1, 2)
        if pred.points.shape != gt_points.shape:
            problems.add("invalid", f"{row.image_path}: {len(pred.points)} points, expected {len(gt_points)}")
            continue
        errors.append(mean_radial_error(pred.points, gt_points))
    count_unexpected(rows, predictions, problems)
    if not errors:
        return {"MRE": 0.0, "num_samples": 0}, {}
    return {"MRE": float(np.mean(errors)), "num_samples": len(errors)}, {}
