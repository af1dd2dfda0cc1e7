"""The challenge's keys reproduce its evaluator (AUC fallback, per-class F1 indexing); the strict
values cannot be gamed by deleting predictions; measurements are scored; odd inputs are reported."""

import json

import numpy as np
import pytest
from sklearn.metrics import f1_score

from m2dino.evaluation.ground_truth import GroundTruth
from m2dino.evaluation.scoring.per_submission import STRAY_MASKS, score_submission
from m2dino.evaluation.submission import SubmissionEntry, write_submission
from m2dino.evaluation.submission_reader import read_submission
from m2dino.models.predictions import KeypointPrediction, ScalarPrediction, SegmentationPrediction

from .test_scoring import cls_entry, cls_gt, mask, seg_entry, seg_gt


def score(tmp_path, rows, entries):
    write_submission(entries, tmp_path / "pred")
    return score_submission(rows, read_submission(tmp_path / "pred"))


def test_auc_where_a_class_is_absent_is_the_challenges_zero_and_ours_is_kept_beside_it(tmp_path):
    # organ_cls has 6 classes; the ground truth holds only 0, 1 and 2: scikit-learn's one-vs-rest AUC
    # raises and the organisers' evaluator writes 0.0.
    labels = [0, 1, 2, 0, 1, 2]
    rows = [cls_gt(f"{i}.png", y, task="organ_cls", num_classes=6) for i, y in enumerate(labels)]
    probs = [np.eye(6)[y] * 0.5 + 0.5 / 6 for y in labels]                   # rows sum to 1, perfect ranking
    metrics = score(tmp_path, rows, [cls_entry(r, y, p) for r, y, p in zip(rows, labels, probs)])
    assert metrics["classification"]["organ_cls"]["AUC"] == 0.0
    extra = metrics["summary"]["additional_metrics"]["organ_cls"]
    assert extra["AUC_present_classes"] == pytest.approx(1.0)
    assert any("Number of classes in y_true" in n for n in metrics["summary"]["problems"]["organ_cls"]["notes"])


def test_per_class_f1_indexes_present_labels_like_the_challenge(tmp_path):
    # class 1 absent from both: the challenge's class_1 is class 2's F1
    truth, predicted = [0, 2, 2, 0], [0, 2, 0, 0]
    rows = [cls_gt(f"{i}.png", y, task="breast_3cls", num_classes=3) for i, y in enumerate(truth)]
    metrics = score(tmp_path, rows, [cls_entry(r, p, np.eye(3)[p]) for r, p in zip(rows, predicted)])
    present = f1_score(truth, predicted, average=None, zero_division=0)
    assert metrics["classification"]["breast_3cls"]["per_class"] == {
        "class_0": {"F1": pytest.approx(present[0])}, "class_1": {"F1": pytest.approx(present[1])},
        "class_2": {"F1": 0.0}}
    ours = metrics["summary"]["additional_metrics"]["breast_3cls"]["per_class"]
    assert ours["class_1"]["F1"] == 0.0 and ours["class_2"]["F1"] == pytest.approx(present[1])


def test_deleting_a_hard_case_never_improves_the_strict_summary(tmp_path):
    rows = [seg_gt(f"{i}.png", mask((4, 4), (0, 2), (0, 2))) for i in range(2)]
    good, bad = mask((4, 4), (0, 2), (0, 2)), mask((4, 4), (2, 4), (2, 4))
    full = score(tmp_path / "a", rows, [seg_entry(rows[0], good), seg_entry(rows[1], bad)])
    gamed = score(tmp_path / "b", rows, [seg_entry(rows[0], good)])
    # the challenge's value rises when the hard case is deleted (as its evaluator does) ...
    assert gamed["segmentation"]["fetal_head"]["DSC"] > full["segmentation"]["fetal_head"]["DSC"]
    # ... the strict value does not: the deleted case counts as Dice 0 and HD = the 4×4 diagonal
    strict = gamed["summary"]["additional_metrics"]["fetal_head"]["strict"]
    assert strict == {"DSC": pytest.approx(0.5), "HD": pytest.approx(32 ** 0.5 / 2)}
    assert gamed["summary"]["by_type"]["segmentation"]["DSC"] <= full["summary"]["by_type"]["segmentation"]["DSC"]
    assert gamed["summary"]["complete"] is False and full["summary"]["complete"] is True


def test_strict_values_of_every_kind(tmp_path):
    cls_rows = [cls_gt("c0.png", 0), cls_gt("c1.png", 1)]
    reg = [GroundTruth("FUGC", "keypoints", 2, f"r{i}.png", label=np.zeros((2, 2)), image_size=(30, 40))
           for i in range(2)]
    hc = [GroundTruth("fetal_head_circumference", "scalar", 0, f"h{i}.png", label=v)
          for i, v in enumerate([100., 200.])]
    entries = [cls_entry(cls_rows[0], 0, [0.8, 0.2]),                       # c1 missing: strict says class 0
               SubmissionEntry("FUGC", "r0.png", KeypointPrediction(np.array([[3.0, 4.0], [0.0, 0.0]]))),
               SubmissionEntry("fetal_head_circumference", "h0.png", ScalarPrediction(110.0, "mm"))]
    metrics = score(tmp_path, cls_rows + reg + hc, entries)
    strict = {t: metrics["summary"]["additional_metrics"][t]["strict"]
              for t in ("breast_2cls", "FUGC", "fetal_head_circumference")}
    assert metrics["classification"]["breast_2cls"]["Accuracy"] == 1.0 and strict["breast_2cls"]["Accuracy"] == 0.5
    assert metrics["regression"]["FUGC"]["MRE"] == 2.5 and strict["FUGC"]["MRE"] == pytest.approx((2.5 + 50) / 2)
    assert metrics["measurement"]["fetal_head_circumference"] == {"MAE": 10.0, "relative_error": 0.1, "num_samples": 1}
    assert strict["fetal_head_circumference"] == {"MAE": pytest.approx(105.0), "relative_error": pytest.approx(0.55)}


def test_negative_probabilities_and_stray_masks_are_reported(tmp_path):
    rows = [cls_gt("a.png", 0), cls_gt("b.png", 1), seg_gt("s.png", mask((4, 4), (0, 2), (0, 2)))]
    entries = [cls_entry(rows[0], 0, [4.0, -3.0]), cls_entry(rows[1], 1, [0.2, 0.8]),
               seg_entry(rows[2], mask((4, 4), (0, 2), (0, 2))),
               SubmissionEntry("fetal_head", "typo.png", SegmentationPrediction(mask((4, 4), (0, 1), (0, 1))),
                               mask_path="../Segmentation/Two/d/MASKS/typo.png")]
    metrics = score(tmp_path, rows, entries)
    problems = metrics["summary"]["problems"]
    assert problems["breast_2cls"]["out_of_range"] == 1
    assert any("outside [0, 1]" in n for n in problems["breast_2cls"]["notes"])
    assert problems[STRAY_MASKS]["unexpected"] == 1
    assert any("Segmentation/Two/d/MASKS/typo.png" in n for n in problems[STRAY_MASKS]["notes"])
    json.dumps(metrics["summary"]["problems"])  # serialisable as written into metrics.json
