import json
import math

import numpy as np
import pytest
from PIL import Image

from m2dino.evaluation.ground_truth import GroundTruth
from m2dino.evaluation.scoring.per_submission import score_submission, write_metrics
from m2dino.evaluation.submission import SubmissionEntry, write_submission
from m2dino.evaluation.submission_reader import read_submission
from m2dino.models.predictions import (
    ClassificationPrediction,
    DetectionPrediction,
    KeypointPrediction,
    SegmentationPrediction,
)


def mask(shape, rows, cols, value=1):
    out = np.zeros(shape, np.uint8)
    out[rows[0]:rows[1], cols[0]:cols[1]] = value
    return out


def seg_gt(name, gt_mask, task="fetal_head", num_classes=2):
    return GroundTruth(task, "mask", num_classes, f"../Segmentation/Two/d/IMAGES/{name}",
                       mask_path=f"../Segmentation/Two/d/MASKS/{name}", mask=lambda: gt_mask)


def seg_entry(row, pred_mask):
    return SubmissionEntry(row.task_id, row.image_path, SegmentationPrediction(pred_mask), mask_path=row.mask_path)


def score(tmp_path, ground_truth, entries, **kwargs):
    write_submission(entries, tmp_path / "pred")
    return score_submission(ground_truth, read_submission(tmp_path / "pred"), **kwargs)


def test_segmentation_task_matches_hand_values(tmp_path):
    a = seg_gt("a.png", mask((4, 4), (0, 2), (0, 2)))
    b = seg_gt("b.png", np.zeros((4, 4), np.uint8))
    pred_a = mask((4, 4), (0, 2), (0, 3))          # Dice 0.8, HD 1 (see the metric tests)
    pred_b = mask((4, 4), (3, 4), (3, 4))          # ground truth empty: Dice 0, HD = diagonal
    metrics = score(tmp_path, [a, b], [seg_entry(a, pred_a), seg_entry(b, pred_b)])
    result = metrics["segmentation"]["fetal_head"]
    assert set(result) == {"DSC", "HD", "num_samples", "per_class"}
    assert result["num_samples"] == 2
    assert result["DSC"] == pytest.approx((0.8 + 0.0) / 2)
    assert result["HD"] == pytest.approx((1.0 + math.sqrt(32)) / 2)
    assert result["per_class"]["class_0"]["DSC"] == pytest.approx((20 / 22 + 30 / 31) / 2)
    assert set(result["per_class"]) == {"class_0", "class_1"}
    extra = metrics["summary"]["additional_metrics"]["fetal_head"]
    assert extra["NSD"] == pytest.approx((1.0 + 0.0) / 2) and extra["nsd_tolerance_px"] == 2.0


def test_segmentation_problems_are_counted(tmp_path):
    rows = [seg_gt(f"{i}.png", mask((4, 4), (0, 2), (0, 2))) for i in range(4)]
    big = np.kron(mask((4, 4), (0, 2), (0, 2)), np.ones((2, 2), np.uint8))   # right mask, twice the size
    entries = [seg_entry(rows[0], big), seg_entry(rows[1], mask((4, 4), (0, 2), (0, 2), value=9))]
    write_submission(entries, tmp_path / "pred")
    rgb = tmp_path / "pred/Segmentation/Two/d/MASKS/2.png"
    Image.new("RGB", (4, 4)).save(rgb)
    metrics = score_submission(rows, read_submission(tmp_path / "pred"))
    result = metrics["segmentation"]["fetal_head"]
    problems = metrics["summary"]["problems"]["fetal_head"]
    assert result["num_samples"] == 2
    assert result["per_class"]["class_1"]["DSC"] == pytest.approx((1.0 + 0.0) / 2)  # resized exactly; 9 is no class
    assert {k: problems[k] for k in ("missing", "invalid", "wrong_size", "out_of_range")} == {
        "missing": 1, "invalid": 1, "wrong_size": 1, "out_of_range": 1}
    assert any("8×8, ground truth 4×4" in note for note in problems["notes"])


def cls_gt(name, label, task="breast_2cls", num_classes=2):
    return GroundTruth(task, "class", num_classes, name, label=label)


def cls_entry(row, index, probs, task=None):
    return SubmissionEntry(task or row.task_id, row.image_path, ClassificationPrediction(index, np.array(probs)))


def test_classification_task_and_its_problems(tmp_path):
    rows = [cls_gt(f"{i}.png", label) for i, label in enumerate([0, 0, 1, 1, 1])]
    entries = [cls_entry(rows[0], 0, [0.9, 0.1]), cls_entry(rows[1], 1, [0.4, 0.6]),
               cls_entry(rows[2], 1, [0.6, 0.4]), cls_entry(rows[3], 1, [0.1, 0.2, 0.7]),
               SubmissionEntry("breast_2cls", "stray.png", ClassificationPrediction(0, np.array([1.0, 0.0]))),
               SubmissionEntry("organ_cls", "x.png", ClassificationPrediction(0, np.ones(6) / 6))]
    metrics = score(tmp_path, rows, entries)
    result = metrics["classification"]["breast_2cls"]
    assert list(result) == ["AUC", "Accuracy", "F1_macro", "F1_weighted", "MCC", "num_samples", "per_class"]
    assert result["num_samples"] == 4 and result["Accuracy"] == pytest.approx(0.75)
    # the challenge's AUC fails on the image with 3 probabilities and writes 0.0; ours ranks the images
    # with 2: positive 0.4 against negatives 0.1 and 0.6
    assert result["AUC"] == 0.0
    assert metrics["summary"]["additional_metrics"]["breast_2cls"]["AUC_present_classes"] == pytest.approx(0.5)
    problems = metrics["summary"]["problems"]
    assert (problems["breast_2cls"]["missing"], problems["breast_2cls"]["out_of_range"],
            problems["breast_2cls"]["unexpected"]) == (1, 1, 1)
    assert any(n.startswith("AUC: 0.0 as the challenge's evaluator writes it")
               for n in problems["breast_2cls"]["notes"])
    assert problems["organ_cls"]["unexpected"] == 1     # a task the ground truth does not have
    assert "organ_cls" not in metrics["classification"]


def test_undefined_auc_is_null_and_left_out_of_the_means(tmp_path):
    only_positive = [cls_gt("a.png", 1), cls_gt("b.png", 1)]
    other = [cls_gt("c.png", 0, task="lung_2cls"), cls_gt("d.png", 1, task="lung_2cls")]
    entries = [cls_entry(r, 1, [0.2, 0.8]) for r in only_positive] + [cls_entry(other[0], 0, [0.7, 0.3]),
                                                                        cls_entry(other[1], 1, [0.4, 0.6])]
    metrics = score(tmp_path, only_positive + other, entries)
    assert math.isnan(metrics["classification"]["breast_2cls"]["AUC"])
    assert metrics["summary"]["by_type"]["classification"]["AUC"] == 1.0
    path, report = write_metrics(metrics, tmp_path / "out/metrics.json")
    assert json.loads(path.read_text())["classification"]["breast_2cls"]["AUC"] is None
    assert "| breast_2cls | breast | 2 | 1.0000 |" in report.read_text()


def test_class_index_out_of_range_is_invalid(tmp_path):
    rows = [cls_gt("a.png", 1)]
    metrics = score(tmp_path, rows, [cls_entry(rows[0], 5, [0.5, 0.5])])
    assert metrics["classification"]["breast_2cls"]["num_samples"] == 0
    assert metrics["summary"]["problems"]["breast_2cls"]["invalid"] == 1


def det_gt(name, box):
    return GroundTruth("thyroid_nodule_det", "boxes", 1, name, label=np.array(box, float))


def det_entry(row, boxes, scores):
    return SubmissionEntry(row.task_id, row.image_path, DetectionPrediction(np.array(boxes, float), np.array(scores),
                                                                            np.zeros(len(scores), int)))


def test_detection_iou_and_ap(tmp_path):
    rows = [det_gt("a.png", [0, 0, 10, 10]), det_gt("b.png", [0, 0, 10, 10]), det_gt("c.png", [0, 0, 10, 10])]
    entries = [det_entry(rows[0], [[5, 5, 15, 15]], [0.9]), det_entry(rows[1], [[0, 0, 10, 10]], [0.8]),
               det_entry(rows[2], [[10, 10, 0, 0]], [0.7])]
    metrics = score(tmp_path, rows, entries)
    assert metrics["detection"]["thyroid_nodule_det"] == {"IoU": pytest.approx((25 / 175 + 1 + 0) / 3),
                                                          "num_samples": 3}
    # ranked FP (IoU 1/7), TP, FP: precision 1/2 at recall 1/3
    assert metrics["summary"]["additional_metrics"]["thyroid_nodule_det"]["AP50"] == pytest.approx(1 / 6)
    assert metrics["summary"]["problems"]["thyroid_nodule_det"]["out_of_range"] == 1   # the inverted box


def test_detection_without_scores_has_no_ap(tmp_path):
    rows = [det_gt("a.png", [0, 0, 10, 10])]
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred/detection_predictions.json").write_text(json.dumps(
        [{"image_path": "a.png", "task_id": "thyroid_nodule_det", "bbox_pixels": [0, 0, 10, 10]}]))
    metrics = score_submission(rows, read_submission(tmp_path / "pred"))
    assert metrics["detection"]["thyroid_nodule_det"]["IoU"] == 1.0
    assert math.isnan(metrics["summary"]["additional_metrics"]["thyroid_nodule_det"]["AP50"])


def reg_gt(name, points):
    return GroundTruth("FUGC", "keypoints", 2, name, label=np.array(points, float))


def test_regression_mre_and_wrong_point_count(tmp_path):
    rows = [reg_gt("a.png", [[0, 0], [0, 0]]), reg_gt("b.png", [[1, 1], [2, 2]]), reg_gt("c.png", [[0, 0], [1, 1]])]
    entries = [SubmissionEntry("FUGC", "a.png", KeypointPrediction(np.array([[0, 0], [3, 4]]))),
               SubmissionEntry("FUGC", "b.png", KeypointPrediction(np.array([[1, 1], [2, 2]]))),
               SubmissionEntry("FUGC", "c.png", KeypointPrediction(np.array([[0, 0], [1, 1], [2, 2]])))]
    metrics = score(tmp_path, rows, entries)
    assert metrics["regression"]["FUGC"] == {"MRE": pytest.approx((2.5 + 0.0) / 2), "num_samples": 2}
    assert "c.png: 3 points, expected 2" in metrics["summary"]["problems"]["FUGC"]["notes"][0]


def test_summary_by_type_and_group_and_task_filter(tmp_path):
    head = seg_gt("a.png", mask((4, 4), (0, 2), (0, 2)))
    lesion = seg_gt("b.png", mask((4, 4), (0, 2), (0, 2)), task="breast_lesion")
    breast = cls_gt("c.png", 1)
    entries = [seg_entry(head, mask((4, 4), (0, 2), (0, 2))), seg_entry(lesion, np.zeros((4, 4), np.uint8)),
               cls_entry(breast, 1, [0.2, 0.8])]
    metrics = score(tmp_path, [head, lesion, breast], entries)
    assert list(metrics) == ["segmentation", "classification", "summary"]
    by_type = metrics["summary"]["by_type"]["segmentation"]
    assert (by_type["DSC"], by_type["num_tasks"], by_type["num_samples"]) == (0.5, 2, 2)
    by_group = metrics["summary"]["by_group"]
    assert by_group["fetal"]["segmentation"]["DSC"] == 1.0
    assert set(by_group["breast"]) == {"segmentation", "classification"}
    assert by_group["breast"]["segmentation"]["DSC"] == 0.0
    only = score_submission([head, lesion, breast], read_submission(tmp_path / "pred"), tasks=["fetal_head"],
                            groups={"fetal_head": "mine"})
    assert list(only) == ["segmentation", "summary"] and list(only["summary"]["by_group"]) == ["mine"]
    assert list(only["summary"]["problems"]) == ["fetal_head"]          # other tasks' predictions: not unexpected
    assert only["summary"]["problems"]["fetal_head"]["unexpected"] == 0
    with pytest.raises(ValueError, match="task\\(s\\) not in the ground truth: lung"):
        score_submission([head], read_submission(tmp_path / "pred"), tasks=["lung"])


def test_missing_prediction_file_and_duplicates_are_reported(tmp_path):
    rows = [reg_gt("a.png", [[0, 0], [0, 0]])]
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred/classification_predictions.json").write_text(json.dumps(
        [{"image_path": "x", "task_id": "breast_2cls", "predicted_class": 0}] * 2))
    metrics = score_submission(rows, read_submission(tmp_path / "pred"))
    problems = metrics["summary"]["problems"]
    assert metrics["regression"]["FUGC"]["num_samples"] == 0 and problems["FUGC"]["missing"] == 1
    assert "no regression_predictions.json in the submission" in problems["FUGC"]["notes"]
    assert problems["breast_2cls"]["duplicate"] == 1 and problems["breast_2cls"]["unexpected"] == 1


def test_markdown_report_lists_tables_and_problems(tmp_path):
    rows = [reg_gt("a.png", [[0, 0], [0, 0]]), reg_gt("b.png", [[0, 0], [0, 0]])]
    metrics = score(tmp_path, rows, [SubmissionEntry("FUGC", "a.png", KeypointPrediction(np.array([[3, 4], [3, 4]])))])
    _, report = write_metrics(metrics, tmp_path / "metrics.json")
    text = report.read_text()
    assert "| FUGC | cervix | 1 | 5.0000 | 1 |" in text
    assert "| FUGC | 1 | 0 | 0 | 0 | 0 | 0 |" in text
    assert "MRE ↓" in text and "- **missing**:" in text
