import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from m2dino.evaluation.metrics import (
    average_precision,
    box_iou,
    box_iou_matrix,
    label_scores,
    mean_radial_error,
    one_vs_rest_auc,
    radial_errors,
)


def test_label_scores_on_a_hand_case():
    scores = label_scores(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 2)
    assert scores["Accuracy"] == pytest.approx(0.75)
    # class 0: P=1, R=1/2 -> 2/3; class 1: P=2/3, R=1 -> 4/5
    assert scores["per_class"] == {"class_0": {"F1": pytest.approx(2 / 3)}, "class_1": {"F1": pytest.approx(0.8)}}
    assert scores["F1_macro"] == pytest.approx((2 / 3 + 0.8) / 2)
    assert scores["F1_weighted"] == pytest.approx((2 / 3 + 0.8) / 2)
    assert scores["MCC"] == pytest.approx((2 * 1 - 1 * 0) / math.sqrt(3 * 2 * 2 * 1))


def test_per_class_f1_is_indexed_by_class_and_macro_uses_present_labels():
    scores = label_scores(np.array([0, 0, 2, 2]), np.array([0, 0, 2, 2]), 3)
    assert scores["per_class"]["class_1"]["F1"] == 0.0   # absent everywhere: zero_division=0
    assert scores["per_class"]["class_2"]["F1"] == 1.0
    assert scores["F1_macro"] == 1.0                     # scikit-learn's default labels, as the challenge
    assert scores["MCC"] == 1.0


def test_single_class_mcc_is_zero_without_crashing():
    assert label_scores(np.array([1, 1]), np.array([1, 1]), 2)["MCC"] == 0.0


def test_binary_auc_is_the_class_1_score():
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.6, 0.4], [0.1, 0.9]])
    auc, skipped = one_vs_rest_auc(np.array([0, 0, 1, 1]), probs, 2)
    assert (auc, skipped) == (pytest.approx(0.75), [])   # 3 of the 4 positive/negative pairs are ordered


def test_multiclass_auc_equals_scikit_learn_ovr_macro():
    rng = np.random.default_rng(1)
    y = np.tile(np.arange(4), 10)
    probs = rng.random((40, 4))
    probs /= probs.sum(axis=1, keepdims=True)
    auc, skipped = one_vs_rest_auc(y, probs, 4)
    assert skipped == [] and auc == pytest.approx(roc_auc_score(y, probs, multi_class="ovr", average="macro"))


def test_auc_leaves_out_classes_absent_from_the_ground_truth():
    y = np.array([0, 0, 1, 1])
    probs = np.array([[0.8, 0.1, 0.1], [0.3, 0.5, 0.2], [0.4, 0.4, 0.2], [0.1, 0.6, 0.3]])
    auc, skipped = one_vs_rest_auc(y, probs, 3)
    # class 0: 0.8>0.4, 0.8>0.1, 0.3<0.4, 0.3>0.1 -> 3/4; class 1: 0.4>0.1, 0.4<0.5, 0.6>0.1, 0.6>0.5 -> 3/4
    assert skipped == [2]
    assert auc == pytest.approx((roc_auc_score(y == 0, probs[:, 0]) + roc_auc_score(y == 1, probs[:, 1])) / 2)
    assert auc == pytest.approx(0.75)


def test_auc_is_nan_when_undefined():
    auc, skipped = one_vs_rest_auc(np.array([1, 1]), np.array([[0.2, 0.8], [0.3, 0.7]]), 2)
    assert math.isnan(auc) and skipped == [1]
    with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
        one_vs_rest_auc(np.array([1, 1]), np.array([[0.2, 0.8], [0.3, 0.7]]), 3)


def test_box_iou_hand_cases():
    assert box_iou([0, 0, 10, 10], [5, 5, 15, 15]) == pytest.approx(25 / 175)
    assert box_iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert box_iou([0, 0, 10, 10], [10, 0, 20, 10]) == 0.0            # touching edges
    assert box_iou([0, 0, 10, 10], [20, 20, 30, 30]) == 0.0           # disjoint
    assert box_iou([5, 5, 5, 5], [5, 5, 5, 5]) == 0.0                 # empty union
    assert box_iou([0, 0, 0, 10], [0, 0, 10, 10]) == 0.0              # zero width
    assert box_iou([10, 10, 0, 0], [0, 0, 10, 10]) == 0.0             # inverted: zero area
    assert box_iou_matrix(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)


def test_average_precision_voc_all_point_hand_case():
    gt = [np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10]])]
    hit, miss = [0, 0, 10, 10], [50, 50, 60, 60]
    predictions = [(np.array([hit, hit]), np.array([0.9, 0.6])),   # the second hit duplicates the first: FP
                   (np.array([miss]), np.array([0.8])),
                   (np.array([hit]), np.array([0.7]))]
    # ranked TP FP TP FP: recall 1/3 at precision 1, 2/3 at 2/3 -> AP = 1/3 + 1/3 * 2/3
    assert average_precision(predictions, gt) == pytest.approx(5 / 9)


def test_average_precision_edge_cases():
    gt = [np.array([[0, 0, 10, 10]])]
    half = (np.array([[0, 0, 10, 5]]), np.array([0.5]))                   # IoU exactly 0.5 counts
    assert average_precision([half], gt) == 1.0
    assert average_precision([half], gt, iou_threshold=0.51) == 0.0
    assert average_precision([(np.zeros((0, 4)), np.zeros(0))], gt) == 0.0
    assert math.isnan(average_precision([half], [np.zeros((0, 4))]))
    with pytest.raises(ValueError, match="1 boxes but 2 scores"):
        average_precision([(np.array([[0, 0, 1, 1]]), np.array([0.1, 0.2]))], gt)


def test_mean_radial_error():
    assert mean_radial_error([[0, 0], [3, 4]], [[0, 0], [0, 0]]) == pytest.approx(2.5)
    np.testing.assert_allclose(radial_errors([[1, 1]], [[4, 5]]), [5.0])
    with pytest.raises(ValueError, match="same shape"):
        mean_radial_error([[0, 0]], [[0, 0], [1, 1]])
