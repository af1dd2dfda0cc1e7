"""Cosine similarity, histogram mutual information and agreement-diversity on hand-made vectors."""

import math

import numpy as np
import pytest

from m2dino.selection.agreement import agreement_diversity, cosine_similarity, min_max, mutual_information


def test_cosine_similarity_of_hand_made_vectors():
    a = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    b = np.array([[0.0, 2.0], [3.0, 0.0]])
    expected = [[0.0, 1.0], [1 / math.sqrt(2), 1 / math.sqrt(2)], [0.0, 0.0]]  # a zero vector: 0
    assert cosine_similarity(a, b) == pytest.approx(np.array(expected))


def test_mutual_information_of_a_vector_with_itself_is_its_entropy():
    x = np.array([0.0, 0.0, 1.0, 1.0])  # two equally likely values: H = ln 2
    assert mutual_information(x, x) == pytest.approx(math.log(2))
    x4 = np.array([0.0, 1.0, 2.0, 3.0])  # four: ln 4
    assert mutual_information(x4, x4 * 10) == pytest.approx(math.log(4))


def test_mutual_information_of_independent_vectors_is_zero():
    x = np.array([0.0, 0.0, 1.0, 1.0])
    y = np.array([0.0, 1.0, 0.0, 1.0])  # every (x, y) pair once: p(x, y) = p(x)·p(y)
    assert mutual_information(x, y) == pytest.approx(0.0)


def test_min_max_scales_to_unit_range_and_maps_constants_to_zero():
    assert min_max(np.array([2.0, 4.0, 3.0])).tolist() == [0.0, 1.0, 0.5]
    assert min_max(np.array([5.0, 5.0])).tolist() == [0.0, 0.0]


def test_agreement_diversity_by_hand():
    labelled = np.array([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    candidates = np.array([
        [0.0, 0.0, 1.0, 1.0],  # the labelled image itself: cos 1, MI ln 2
        [0.0, 1.0, 0.0, 1.0],  # orthogonal-ish and independent: cos 1/2, MI 0
        [1.0, 1.0, 0.0, 0.0],  # the complement: cos 0, MI ln 2 (fully determined)
    ])
    # cos = (1, 1/2, 0) -> min-max (1, 1/2, 0); MI = (ln2, 0, ln2) -> (1, 0, 1)
    expected = [2 - 0.5 * 1 - 0.5 * 1, 2 - 0.5 * 0.5 - 0.5 * 0, 2 - 0.5 * 0 - 0.5 * 1]
    assert agreement_diversity(candidates, labelled) == pytest.approx(expected)


def test_agreement_diversity_needs_labelled_images():
    with pytest.raises(ValueError, match="at least one labelled image"):
        agreement_diversity(np.ones((2, 3)), np.zeros((0, 3)))


def test_mutual_information_matches_the_reference_histogram2d_estimator():
    # The SSL-EGAD code: np.histogram2d(a, b, 20), then Σ p(x,y)·log(p(x,y) / (p(x)·p(y))).
    def reference(a, b):
        pxy = np.histogram2d(a, b, 20)[0]
        pxy = pxy / pxy.sum()
        outer = pxy.sum(axis=1)[:, None] * pxy.sum(axis=0)[None, :]
        nonzero = pxy > 0
        return np.sum(pxy[nonzero] * np.log(pxy[nonzero] / outer[nonzero]))

    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, 4096) / 255  # values on bin edges included (e.g. 51/255 = 0.2)
    pairs = [(gray, np.roll(gray, 7)), (gray, gray ** 2), (rng.normal(size=500), rng.normal(size=500))]
    for a, b in pairs:
        assert mutual_information(a, b) == pytest.approx(reference(a, b), rel=1e-12, abs=1e-12)
