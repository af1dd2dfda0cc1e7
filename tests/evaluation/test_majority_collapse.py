"""`majority_collapse`: whether a classifier answers (almost) one class whatever the image."""

import numpy as np
import pytest

from m2dino.evaluation.metrics import majority_collapse


def test_one_class_everywhere_is_a_collapse():
    assert majority_collapse(np.zeros(40, int))
    assert majority_collapse([2] * 7)  # any single class, not only class 0


def test_the_95_percent_line():
    assert majority_collapse([1] * 57 + [0] * 3)       # exactly 95 %
    assert not majority_collapse([1] * 56 + [0] * 4)   # 93.3 %
    assert not majority_collapse([0, 1, 2] * 10)       # a model that uses every class
    assert not majority_collapse([1] * 57 + [0] * 3, share=1.0)  # "all predictions one class" only


def test_from_a_confusion_matrix():
    confusion = np.array([[30, 0, 1],   # rows: true class, columns: predicted class
                          [12, 0, 0],
                          [8, 0, 0]])
    predicted = np.repeat(np.arange(3), confusion.sum(axis=0))
    assert majority_collapse(predicted)  # 50 of 51 predictions are class 0


@pytest.mark.parametrize("predicted, share, message", [
    ([], 0.95, r"expected a non-empty vector of predicted classes, got shape \(0,\)"),
    ([[0, 1]], 0.95, r"got shape \(1, 2\)"),
    ([0, 1], 0.0, r"share must be in \(0, 1\], got 0.0"),
])
def test_bad_input_is_refused(predicted, share, message):
    with pytest.raises(ValueError, match=message):
        majority_collapse(predicted, share)
