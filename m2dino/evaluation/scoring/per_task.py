"""Scoring one task of each label kind: the challenge's result dict, our additional metrics, the
strict values, and problems.

Every scorer takes the task's ground-truth rows, a `PredictionOf` (the prediction answering a row),
a `TaskProblems` to fill and the `ScoreSettings`, and returns ``(challenge_result, additional_metrics)``.
Finding predictions in a submission is `per_submission`'s part, so a scorer knows no files.

- The challenge's keys reproduce the organisers' evaluator exactly, including its habits: only
  images with a usable prediction are scored (``num_samples``), an AUC that scikit-learn refuses is
  0.0 (one it returns as NaN, a binary task with one class present, stays NaN, written null), and
  per-class F1 indexes scikit-learn's present-labels array. Measured equal on every key:
  ``benchmarks/official_parity.py``.
- ``additional_metrics["strict"]`` holds the same headline metrics with every missing or invalid
  prediction counted as a failure, so deleting a hard case can never raise a score: Dice 0 and
  Hausdorff = the image diagonal for every class; a wrong class (and uniform probabilities for the
  AUC); IoU 0; MRE = the image diagonal; a measurement error of |true value| (relative error 1).
  The summary and the trainer's best-model choice use these.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from ...limits import finite_number
from ...models.predictions import ClassificationPrediction, DetectionPrediction, KeypointPrediction, ScalarPrediction
from ..entries import Entry, InvalidPrediction
from ..ground_truth import GroundTruth
from ..metrics.classification import challenge_auc, challenge_per_class_f1, label_scores, one_vs_rest_auc
from ..metrics.detection import average_precision, box_iou, is_inverted
from ..metrics.regression import mean_radial_error
from ..metrics.segmentation import class_scores, resize_nearest
from ..problems import TaskProblems

PROBABILITY_SUM_TOLERANCE = 1e-3
# Beyond the diagonal of the largest image m2dino decodes (6,324 × 6,324 at the default pixel limit:
# 8,944 px) every boundary pixel is within tolerance, so NSD is 1 whatever the prediction.
MAX_NSD_TOLERANCE_PX = 10_000.0
# The prediction answering a ground-truth row: an `Entry`, a mask array (segmentation), or None if missing.
PredictionOf = Callable[[GroundTruth], Entry | np.ndarray | None]


def check_nsd_tolerance(value: float, what: str = "nsd_tolerance") -> float:
    """A surface-Dice tolerance in pixels: finite, in [0, `MAX_NSD_TOLERANCE_PX`] (NaN would make every
    NSD 0.0 without a word), else one error naming ``what`` (the CLI passes its flag)."""
    return finite_number(what, value, 0.0, MAX_NSD_TOLERANCE_PX)


@dataclass(frozen=True)
class ScoreSettings:
    nsd_tolerance: float = 2.0
    ap_iou_threshold: float = 0.5
    progress: bool = False

    def __post_init__(self) -> None:
        check_nsd_tolerance(self.nsd_tolerance)
        finite_number("ap_iou_threshold", self.ap_iou_threshold, 0.0, 1.0)


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


def _diagonal(row: GroundTruth) -> float:
    if row.image_size is None:
        return math.nan
    return float(np.hypot(*row.image_size))


def score_segmentation(rows: Sequence[GroundTruth], prediction_of: PredictionOf, problems: TaskProblems,
                       settings: ScoreSettings) -> tuple[dict, dict]:
    num_classes = rows[0].num_classes
    names = ("DSC", "HD", "HD95", "NSD")
    totals = {name: np.zeros(num_classes) for name in names}  # HD95, NSD: NaN at 0
    strict = {name: np.zeros(num_classes) for name in ("DSC", "HD")}
    scored = 0
    for row in tqdm(rows, desc=f"  {rows[0].task_id}", unit="mask", disable=not settings.progress, leave=False):
        pred = prediction_of(row)
        gt = row.load_mask()
        if gt.ndim != 2:
            raise ValueError(f"{row.task_id} / {row.mask_path}: ground-truth mask of shape {gt.shape}; expected H×W")
        if not _usable(pred, np.ndarray, row, problems):
            strict["HD"] += float(np.hypot(*gt.shape))   # and Dice 0
            continue
        if pred.shape != gt.shape:
            problems.add("wrong_size", f"{row.mask_path}: prediction W×H {pred.shape[1]}×{pred.shape[0]}, "
                                       f"ground truth {gt.shape[1]}×{gt.shape[0]}")
            pred = resize_nearest(pred, gt.shape)
        if pred.size and int(pred.max()) >= num_classes:
            problems.add("out_of_range", f"{row.mask_path}: mask value {int(pred.max())} >= {num_classes} classes")
        for name, values in class_scores(pred, gt, num_classes, settings.nsd_tolerance).items():
            totals[name] += values
        scored += 1
    strict = {name: float((strict[name][1:] + totals[name][1:]).mean() / len(rows)) for name in strict}
    if scored == 0:
        return {"DSC": 0.0, "HD": 0.0, "num_samples": 0, "per_class": {}}, {"strict": strict}
    dice, hd, hd95, nsd = (totals[name] / scored for name in names)
    result = {"DSC": float(dice[1:].mean()), "HD": float(hd[1:].mean()), "num_samples": scored,
              "per_class": {f"class_{c}": {"DSC": float(dice[c]), "HD": float(hd[c])} for c in range(num_classes)}}
    extra = {"HD95": float(hd95[1:].mean()), "NSD": float(nsd[1:].mean()), "nsd_tolerance_px": settings.nsd_tolerance,
             "per_class": {f"class_{c}": {"HD95": float(hd95[c]), "NSD": float(nsd[c])}
                           for c in range(1, num_classes)},
             "strict": strict}
    return result, extra


def _check_probs(probs: np.ndarray | None, num_classes: int, image_path: str, problems: TaskProblems) -> bool:
    """True when ``probs`` can rank images for an AUC; oddities are reported, never silently used."""
    if probs is None or probs.shape != (num_classes,) or not np.isfinite(probs).all():
        what = "no predicted_probs" if probs is None else (
            f"{probs.size} probabilities for {num_classes} classes" if probs.shape != (num_classes,)
            else "non-finite probabilities")
        problems.add("out_of_range", f"{image_path}: {what} (left out of AUC_present_classes)")
        return False
    if probs.min() < 0 or probs.max() > 1:
        problems.add("out_of_range", f"{image_path}: probabilities outside [0, 1] "
                                     f"(min {probs.min():.4g}, max {probs.max():.4g}; used as given)")
    elif abs(float(probs.sum()) - 1.0) > PROBABILITY_SUM_TOLERANCE:
        problems.add("out_of_range", f"{image_path}: probabilities sum to {float(probs.sum()):.4g} (used as given)")
    return True


def score_classification(rows: Sequence[GroundTruth], prediction_of: PredictionOf, problems: TaskProblems,
                         settings: ScoreSettings) -> tuple[dict, dict]:
    num_classes = rows[0].num_classes
    y_true, y_pred, probs_given, auc_true, auc_scores = [], [], [], [], []
    strict_true, strict_pred, strict_scores = [], [], []
    uniform = np.full(num_classes, 1.0 / num_classes)
    for row in rows:
        pred = prediction_of(row)
        truth = int(row.label)
        usable = _usable(pred, ClassificationPrediction, row, problems)
        if usable and not 0 <= pred.class_index < num_classes:
            problems.add("invalid", f"{row.image_path}: predicted_class {pred.class_index} "
                                    f"outside 0..{num_classes - 1}")
            usable = False
        strict_true.append(truth)
        if not usable:
            strict_pred.append((truth + 1) % num_classes)
            strict_scores.append(uniform)
            continue
        y_true.append(truth)
        y_pred.append(pred.class_index)
        probs_given.append(pred.probs)
        strict_pred.append(pred.class_index)
        if _check_probs(pred.probs, num_classes, row.image_path, problems):
            auc_true.append(truth)
            auc_scores.append(pred.probs)
            strict_scores.append(pred.probs)
        else:
            strict_scores.append(uniform)
    strict_labels = label_scores(np.array(strict_true), np.array(strict_pred), num_classes)
    strict_auc, _ = one_vs_rest_auc(np.array(strict_true), np.stack(strict_scores), num_classes)
    strict = {name: strict_labels[name] for name in ("Accuracy", "F1_macro", "F1_weighted", "MCC")}
    strict["AUC"] = strict_auc
    if not y_true:
        return {"AUC": 0.0, "Accuracy": 0.0, "F1_macro": 0.0, "F1_weighted": 0.0, "MCC": 0.0,
                "num_samples": 0, "per_class": {}}, {"AUC_present_classes": math.nan, "strict": strict}
    present_auc = math.nan
    if auc_true:
        present_auc, skipped = one_vs_rest_auc(np.array(auc_true), np.stack(auc_scores), num_classes)
        if skipped:
            problems.note(f"AUC_present_classes: class(es) {skipped} left out (absent from, or alone in, the "
                          f"ground truth of the {len(auc_true)} images with probabilities)")
    auc, failure = challenge_auc(np.array(y_true), probs_given, num_classes)
    if failure:
        problems.note(f"AUC: 0.0 as the challenge's evaluator writes it ({failure}); see AUC_present_classes")
    scores = label_scores(np.array(y_true), np.array(y_pred), num_classes)
    result = {"AUC": auc, "Accuracy": scores["Accuracy"], "F1_macro": scores["F1_macro"],
              "F1_weighted": scores["F1_weighted"], "MCC": scores["MCC"], "num_samples": len(y_true),
              "per_class": challenge_per_class_f1(np.array(y_true), np.array(y_pred), num_classes)}
    extra = {"AUC_present_classes": present_auc, "per_class": scores["per_class"], "strict": strict}
    return result, extra


def score_detection(rows: Sequence[GroundTruth], prediction_of: PredictionOf, problems: TaskProblems,
                    settings: ScoreSettings) -> tuple[dict, dict]:
    ious, ap_predictions, ap_truths = [], [], []
    for row in rows:
        gt_box = np.asarray(row.label, dtype=np.float64).reshape(4)
        ap_truths.append(gt_box[None])
        pred = prediction_of(row)
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
    strict = {"IoU": float(np.sum(ious) / len(rows))}
    if not ious:
        return {"IoU": 0.0, "num_samples": 0}, {"strict": strict}
    # AP ranks boxes by score: without scores (the challenge's format has none) it is undefined.
    scores = np.concatenate([s for _, s in ap_predictions])
    if np.isfinite(scores).all():
        ap = average_precision(ap_predictions, ap_truths, settings.ap_iou_threshold)
    else:
        ap = math.nan
        problems.note("AP50: needs a score per box (boxes_pixels + scores); not computed")
    return {"IoU": float(np.mean(ious)), "num_samples": len(ious)}, {"AP50": ap, "strict": strict}


def score_regression(rows: Sequence[GroundTruth], prediction_of: PredictionOf, problems: TaskProblems,
                     settings: ScoreSettings) -> tuple[dict, dict]:
    errors, failed = [], []
    for row in rows:
        pred = prediction_of(row)
        usable = _usable(pred, KeypointPrediction, row, problems)
        gt_points = np.asarray(row.label, dtype=np.float64).reshape(-1, 2)
        if usable and pred.points.shape != gt_points.shape:
            problems.add("invalid", f"{row.image_path}: {len(pred.points)} points, expected {len(gt_points)}")
            usable = False
        if usable:
            errors.append(mean_radial_error(pred.points, gt_points))
        else:
            failed.append(_diagonal(row))
    strict = {"MRE": float(np.mean(errors + failed))}
    if not errors:
        return {"MRE": 0.0, "num_samples": 0}, {"strict": strict}
    return {"MRE": float(np.mean(errors)), "num_samples": len(errors)}, {"strict": strict}


def score_measurement(rows: Sequence[GroundTruth], prediction_of: PredictionOf, problems: TaskProblems,
                      settings: ScoreSettings) -> tuple[dict, dict]:
    """m2dino's extension: mean absolute error (in the task's unit) and mean relative error
    |predicted − true| / |true|."""
    absolute, relative, strict_abs = [], [], []
    for row in rows:
        pred = prediction_of(row)
        truth = float(row.label)
        if not _usable(pred, ScalarPrediction, row, problems):
            strict_abs.append(abs(truth))
            continue
        error = abs(pred.value - truth)
        absolute.append(error)
        relative.append(error / abs(truth) if truth else math.nan)
        strict_abs.append(error)
    strict_rel = [e / abs(float(r.label)) if float(r.label) else math.nan for e, r in zip(strict_abs, rows)]
    strict = {"MAE": float(np.mean(strict_abs)), "relative_error": float(np.nanmean(strict_rel))}
    if not absolute:
        return {"MAE": 0.0, "relative_error": 0.0, "num_samples": 0}, {"strict": strict}
    return {"MAE": float(np.mean(absolute)), "relative_error": float(np.nanmean(relative)),
            "num_samples": len(absolute)}, {"strict": strict}
