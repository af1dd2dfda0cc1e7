import numpy as np
import pytest
from scipy.spatial.distance import directed_hausdorff

from m2dino.evaluation.metrics.distances import boundary
from m2dino.evaluation.metrics.segmentation import (
    class_scores,
    dice_per_class,
    hausdorff_distance,
    hausdorff_distance_95,
    hausdorff_per_class,
    normalized_surface_dice,
    resize_nearest,
    surface_scores,
)


def brute_hausdorff(a: np.ndarray, b: np.ndarray) -> float:
    pa, pb = np.argwhere(a), np.argwhere(b)
    return max(directed_hausdorff(pa, pb)[0], directed_hausdorff(pb, pa)[0])


def square(shape, rows, cols):
    mask = np.zeros(shape, dtype=np.uint8)
    mask[rows[0]:rows[1], cols[0]:cols[1]] = 1
    return mask


def test_dice_and_hausdorff_on_a_4x4_hand_case():
    gt = square((4, 4), (0, 2), (0, 2))      # 4 pixels
    pred = square((4, 4), (0, 2), (0, 3))    # 6 pixels, 4 shared
    np.testing.assert_allclose(dice_per_class(pred, gt, 2), [2 * 10 / (10 + 12), 2 * 4 / (4 + 6)])
    # (0,2) and (1,2) are 1 px from the ground truth; the same two pixels are what the background lacks
    np.testing.assert_allclose(hausdorff_per_class(pred, gt, 2), [1.0, 1.0])


def test_single_pixels_in_opposite_corners():
    pred, gt = np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8)
    pred[3, 3], gt[0, 0] = 1, 1
    assert dice_per_class(pred, gt, 2)[1] == 0.0
    assert hausdorff_distance(pred == 1, gt == 1) == pytest.approx(np.sqrt(18))
    assert hausdorff_distance(pred == 1, pred == 1) == 0.0


def test_empty_masks_follow_the_benchmark():
    empty, one = np.zeros((4, 4), np.uint8), square((4, 4), (1, 2), (1, 2))
    assert dice_per_class(empty, empty, 2)[1] == 1.0          # both empty
    assert hausdorff_distance(empty, empty) == 0.0
    assert dice_per_class(one, empty, 2)[1] == 0.0            # one empty
    assert hausdorff_distance(one, empty) == pytest.approx(np.sqrt(32))
    assert hausdorff_distance(empty, one) == pytest.approx(np.sqrt(32))
    assert hausdorff_distance(np.zeros((3, 4)), np.ones((3, 4))) == pytest.approx(5.0)


def test_every_class_is_scored_including_absent_ones():
    gt = np.array([[0, 1], [2, 2]])
    pred = np.array([[0, 1], [1, 2]])
    np.testing.assert_allclose(dice_per_class(pred, gt, 4), [1.0, 2 / 3, 2 / 3, 1.0])  # class 3: both empty
    # class 1: predicted (1,0) is sqrt(2) from the true (0,1); class 2: true (1,0) is 1 from (1,1)
    np.testing.assert_allclose(hausdorff_per_class(pred, gt, 4), [0.0, np.sqrt(2), 1.0, 0.0])


def test_values_outside_the_classes_belong_to_no_class():
    gt = np.array([[1, 1], [0, 0]])
    pred = np.array([[1, 7], [0, 0]])
    np.testing.assert_allclose(dice_per_class(pred, gt, 2), [1.0, 2 / 3])


def test_maximum_is_taken_over_interior_pixels_too():
    # A disc inside the hole of a ring: the disc pixel farthest from the ring is its centre, an
    # interior pixel, so a boundary-only maximum would be wrong.
    yy, xx = np.mgrid[:21, :21]
    radius = np.hypot(yy - 10, xx - 10)
    ring, disc = (radius >= 8) & (radius <= 9), radius <= 2
    assert hausdorff_distance(disc, ring) == pytest.approx(brute_hausdorff(disc, ring)) == pytest.approx(8.0)
    assert class_scores(disc.astype(np.uint8), ring.astype(np.uint8), 2, 2.0)["HD"][1] == pytest.approx(8.0)
    boundary_only = directed_hausdorff(np.argwhere(boundary(disc)), np.argwhere(ring))[0]
    assert boundary_only < 8.0


def test_hausdorff_equals_brute_force_on_random_masks():
    rng = np.random.default_rng(0)
    for _ in range(300):
        h, w = rng.integers(1, 13, size=2)
        num_classes = int(rng.integers(2, 4))
        pred = rng.integers(0, num_classes, (h, w)) * (rng.random((h, w)) < rng.random())
        gt = rng.integers(0, num_classes, (h, w)) * (rng.random((h, w)) < rng.random())
        hd = hausdorff_per_class(pred, gt, num_classes)
        np.testing.assert_allclose(class_scores(pred, gt, num_classes, 2.0)["HD"], hd)   # the shared-EDT path
        for c in range(num_classes):
            a, b = pred == c, gt == c
            if a.any() and b.any():
                assert hd[c] == pytest.approx(brute_hausdorff(a, b), abs=1e-9)


def test_background_class_uses_the_complement_crop_exactly():
    gt = square((64, 64), (30, 34), (30, 34))
    pred = square((64, 64), (31, 36), (29, 33))
    assert hausdorff_distance(pred == 0, gt == 0) == pytest.approx(brute_hausdorff(pred == 0, gt == 0))


def test_shapes_must_match():
    with pytest.raises(ValueError, match="same shape"):
        hausdorff_distance(np.zeros((4, 4)), np.zeros((4, 5)))


def test_resize_nearest_matches_opencv_inter_nearest():
    small = np.array([[1, 2], [3, 4]], np.uint8)
    np.testing.assert_array_equal(resize_nearest(small, (4, 4)),
                                  [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]])
    # OpenCV: source index floor(dst * src / dst_size), no half-pixel centre shift
    np.testing.assert_array_equal(resize_nearest(np.arange(16).reshape(4, 4), (2, 2)), [[0, 2], [8, 10]])
    np.testing.assert_array_equal(resize_nearest(np.array([[0, 1, 2]]), (1, 2)), [[0, 1]])


def test_surface_metrics_on_a_shifted_square():
    gt = square((10, 10), (2, 5), (2, 5))
    pred = square((10, 10), (2, 5), (3, 6))
    # boundary distances, each direction: four 0s (shared columns) and four 1s
    assert hausdorff_distance_95(pred, gt) == pytest.approx(1.0)
    assert normalized_surface_dice(pred, gt, tolerance=0) == pytest.approx(0.5)
    assert normalized_surface_dice(pred, gt, tolerance=1) == pytest.approx(1.0)


def test_hd95_ignores_a_far_outlier_that_hd_sees():
    gt = square((12, 12), (0, 3), (0, 3))
    pred = gt.copy()
    pred[0, 11] = 1                      # 9 px from the square
    assert hausdorff_distance(pred, gt) == pytest.approx(9.0)
    # directed pred->gt boundary distances: eight 0s and one 9; 95th percentile = 0.6 * 9
    assert hausdorff_distance_95(pred, gt) == pytest.approx(5.4)
    assert normalized_surface_dice(pred, gt, tolerance=2) == pytest.approx(16 / 17)


def test_surface_metrics_edge_cases():
    empty, one = np.zeros((3, 4)), square((3, 4), (1, 2), (1, 2))
    assert hausdorff_distance_95(empty, empty) == 0.0 and normalized_surface_dice(empty, empty, 2) == 1.0
    assert hausdorff_distance_95(one, empty) == pytest.approx(5.0) and normalized_surface_dice(one, empty, 2) == 0.0
    assert hausdorff_distance_95(one, one) == 0.0 and normalized_surface_dice(one, one, 0) == 1.0
    with pytest.raises(ValueError, match="tolerance must be >= 0"):
        normalized_surface_dice(one, one, -1)


def test_class_scores_gathers_every_per_class_score():
    gt = square((10, 10), (2, 5), (2, 5))
    pred = square((10, 10), (2, 5), (3, 6))
    scores = class_scores(pred, gt, 3, nsd_tolerance=0)
    np.testing.assert_allclose(scores["DSC"], [*dice_per_class(pred, gt, 2), 1.0])
    np.testing.assert_allclose(scores["HD"], [1.0, 1.0, 0.0])
    assert np.isnan(scores["HD95"][0]) and np.isnan(scores["NSD"][0])          # no surface score for background
    np.testing.assert_allclose(scores["HD95"][1:], [1.0, 0.0])
    np.testing.assert_allclose(scores["NSD"][1:], [0.5, 1.0])
    assert surface_scores(pred == 1, gt == 1, 1) == (1.0, 1.0)
