"""Box metrics in pixel coordinates (x_min, y_min, x_max, y_max): the challenge's IoU and AP@0.5."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def box_iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """n×m IoU between two box arrays, with continuous coordinates (area = width × height, no +1,
    as the challenge). A box with x_max < x_min or y_max < y_min has zero area (the challenge's
    formula would give it a positive or negative area from the product of two negative sides);
    IoU is 0 when the union is empty."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    width = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    height = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    intersection = width * height

    def area(boxes: np.ndarray) -> np.ndarray:
        return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)

    union = area(a)[:, None] + area(b)[None, :] - intersection
    return np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two single boxes (the challenge's per-image detection score)."""
    return float(box_iou_matrix(a, b)[0, 0])


def is_inverted(box: Sequence[float]) -> bool:
    """True for a box whose max corner lies before its min corner on some axis."""
    x_min, y_min, x_max, y_max = (float(v) for v in box)
    return x_max < x_min or y_max < y_min


def average_precision(predictions: Sequence[tuple[np.ndarray, np.ndarray]], ground_truths: Sequence[np.ndarray],
                      iou_threshold: float = 0.5) -> float:
    """Single-class average precision at an IoU threshold, Pascal VOC 2010+ all-point interpolation.

    ``predictions[i]`` is (boxes n×4, scores n) for image i, ``ground_truths[i]`` its m×4 true boxes.
    Detections of all images are ranked by score (ties keep input order); each is a true positive
    when its highest-IoU true box in the same image reaches ``iou_threshold`` (IoU >= threshold,
    COCO's comparison) and is not matched yet, otherwise a false positive. AP is the area under the
    precision-recall curve after making precision monotonically non-increasing. NaN when there are
    no true boxes at all; 0 when there are true boxes but no detections.
    """
    if len(predictions) != len(ground_truths):
        raise ValueError(f"{len(predictions)} prediction sets for {len(ground_truths)} ground-truth sets")
    gts = [np.asarray(g, dtype=np.float64).reshape(-1, 4) for g in ground_truths]
    num_true = sum(len(g) for g in gts)
    if num_true == 0:
        return float("nan")
    image_ids, boxes, scores = [], [], []
    for i, (pred_boxes, pred_scores) in enumerate(predictions):
        pred_boxes = np.asarray(pred_boxes, dtype=np.float64).reshape(-1, 4)
        pred_scores = np.asarray(pred_scores, dtype=np.float64).reshape(-1)
        if len(pred_boxes) != len(pred_scores):
            raise ValueError(f"image {i}: {len(pred_boxes)} boxes but {len(pred_scores)} scores")
        image_ids += [i] * len(pred_boxes)
        boxes.append(pred_boxes)
        scores.append(pred_scores)
    if not image_ids:
        return 0.0
    boxes_all, scores_all = np.concatenate(boxes), np.concatenate(scores)
    order = np.argsort(-scores_all, kind="stable")
    matched = [np.zeros(len(g), dtype=bool) for g in gts]
    true_positive = np.zeros(len(order))
    for rank, k in enumerate(order):
        image, gt = image_ids[k], gts[image_ids[k]]
        if len(gt) == 0:
            continue
        ious = box_iou_matrix(boxes_all[k], gt)[0]
        best = int(np.argmax(ious))
        if ious[best] >= iou_threshold and not matched[image][best]:
            matched[image][best] = True
            true_positive[rank] = 1
    tp = np.cumsum(true_positive)
    recall = np.concatenate([[0.0], tp / num_true, [1.0]])
    precision = np.concatenate([[0.0], tp / np.arange(1, len(order) + 1), [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1])
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))
