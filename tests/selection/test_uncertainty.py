"""Predictive entropy per label kind, against values computed by hand."""

import math

import pytest
import torch

from m2dino.models.outputs import (
    ClassificationOutput,
    DetectionOutput,
    KeypointOutput,
    ScalarOutput,
    SegmentationOutput,
)
from m2dino.selection.uncertainty import ENTROPY, predictive_entropy

LN2 = math.log(2)
# softmax([0, ln 3]) = sigmoid(ln 3) = (1/4, 3/4): H = −(¼·ln ¼ + ¾·ln ¾)
H_QUARTER = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
LN3 = math.log(3)


def test_every_label_kind_has_an_entry():
    assert set(ENTROPY) == {"mask", "class", "boxes", "keypoints", "scalar"}


def test_mask_is_the_mean_per_pixel_entropy():
    # one image, 2 classes, 1×2 pixels: pixel 1 undecided (ln 2), pixel 2 at (1/4, 3/4)
    logits = torch.tensor([[[[0.0, 0.0]], [[0.0, LN3]]]])
    entropy = predictive_entropy(SegmentationOutput("fetal_head", logits), "mask")
    assert entropy.shape == (1,)
    assert entropy.item() == pytest.approx((LN2 + H_QUARTER) / 2, rel=1e-6)


def test_class_is_the_entropy_of_the_probabilities():
    logits = torch.tensor([[0.0, LN3], [0.0, 0.0], [100.0, -100.0]])
    entropy = predictive_entropy(ClassificationOutput("breast_2cls", logits), "class")
    assert entropy.tolist() == pytest.approx([H_QUARTER, LN2, 0.0], abs=1e-6)  # saturated: 0, not NaN


def test_boxes_is_the_mean_binary_entropy_of_the_centre_heatmap():
    heatmap = torch.tensor([[[[0.0, LN3]]]])  # sigmoid: 1/2 and 3/4
    output = DetectionOutput("t", heatmap, torch.zeros(1, 2, 1, 2), torch.zeros(1, 2, 1, 2), 4, (4, 8))
    assert predictive_entropy(output, "boxes").item() == pytest.approx((LN2 + H_QUARTER) / 2, rel=1e-6)


def test_keypoints_average_the_entropy_of_each_heatmap_softmax():
    # keypoint 1: uniform over 4 cells (ln 4); keypoint 2: all mass on one cell (0)
    heatmaps = torch.tensor([[[[0.0, 0.0], [0.0, 0.0]], [[200.0, 0.0], [0.0, 0.0]]]])
    output = KeypointOutput("t", heatmaps, torch.zeros(1, 2, 2))
    assert predictive_entropy(output, "keypoints").item() == pytest.approx(math.log(4) / 2, abs=1e-6)


def test_scalar_has_no_entropy_and_says_what_to_use_instead():
    with pytest.raises(ValueError, match=r"task 'hc_mm' predicts a scalar measurement.*--strategy random or coreset"):
        predictive_entropy(ScalarOutput("hc_mm", torch.zeros(2)), "scalar")


def test_unknown_kind_is_named():
    with pytest.raises(ValueError, match="no predictive entropy for label kind 'volume'"):
        predictive_entropy(ScalarOutput("t", torch.zeros(1)), "volume")
