import numpy as np
import pytest

from m2dino.data import Sample
from m2dino.data.transforms import (
    AugmentConfig,
    RandomAffine,
    apply_affine,
    build_transforms,
    resize_sample,
)
from m2dino.image import Preprocessing, ResizeGeometry

from .helpers import gray, rgb


def _points(n: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (n, 2)) * [width, height]


@pytest.mark.parametrize("mode", ["letterbox", "stretch"])
@pytest.mark.parametrize("size", [(37, 53), (64, 64), (50, 20)])
def test_eval_transform_inverse_is_exact_for_keypoints_and_boxes(mode, size):
    height, width = 123, 77
    keypoints = Sample(rgb(height, width), "IUGC", _points(3, height, width))
    box = np.array([[3.25, 7.5, 60.125, 99.0]])
    boxes = Sample(rgb(height, width), "thyroid_nodule_det", box)
    transform = build_transforms("IUGC", Preprocessing(size, mode), train=False)
    moved, geometry = transform(keypoints)
    assert moved.size == size and moved.original_size == (height, width)
    assert np.abs(geometry.points_to_original(moved.label) - keypoints.label).max() < 1e-6
    moved, geometry = build_transforms("thyroid_nodule_det", Preprocessing(size, mode), train=False)(boxes)
    assert np.abs(geometry.boxes_to_original(moved.label) - box).max() < 1e-6


def test_letterbox_keeps_aspect_and_pads_with_zeros_mask_uses_nearest():
    mask = np.zeros((40, 80), np.uint8)
    mask[10:30, 20:60] = 2
    sample = Sample(np.full((40, 80), 200, np.uint8), "head_symphysis_multi", mask)
    moved, geometry = build_transforms("head_symphysis_multi", Preprocessing(64), train=False)(sample)
    assert (geometry.scale_x, geometry.scale_y, geometry.pad_x, geometry.pad_y) == (0.8, 0.8, 0, 16)
    assert moved.image[:16].max() == 0 and moved.image[48:].max() == 0 and moved.image[16:48].min() == 200
    assert set(np.unique(moved.label)) == {0, 2}  # nearest neighbour: no in-between class values
    assert moved.label[16 + 8:16 + 24, 16:48].min() == 2 and moved.label[:16].max() == 0


def test_mask_round_trip_is_exact_for_an_integer_upscale():
    mask = np.random.default_rng(0).integers(0, 4, (10, 15)).astype(np.uint8)
    sample = Sample(gray(10, 15), "cardiac_multi", mask)
    for size, mode in (((40, 60), "stretch"), ((60, 60), "letterbox")):
        moved, geometry = build_transforms("cardiac_multi", Preprocessing(size, mode), train=False)(sample)
        assert np.array_equal(sample.spec.label_kind.to_original(moved.label, geometry), mask)


def test_affine_moves_keypoints_with_the_image_content():
    # A bright dot at each keypoint: after any affine map, the brightest pixel of the warped image
    # must sit at the mapped keypoint.
    image = np.zeros((64, 64), np.uint8)
    image[20, 40] = 255
    sample = Sample(image, "IUGC", [[40.5, 20.5], [10.5, 50.5], [30.5, 30.5]])  # anatomical: order kept
    for seed in range(5):
        matrix = RandomAffine(hflip_p=0.5, vflip_p=0.5, rotate_deg=30, scale=(0.8, 1.2)).matrix(
            sample.size, np.random.default_rng(seed))
        moved = apply_affine(sample, matrix)
        y, x = np.unravel_index(np.argmax(moved.image[..., 0]), (64, 64))
        assert np.hypot(x + 0.5 - moved.label[0, 0], y + 0.5 - moved.label[0, 1]) <= 1.0
        assert np.allclose(moved.meta["augment_affine"], matrix)


def test_flip_is_exact_for_masks_boxes_and_points():
    flip = np.diag([-1.0, 1.0, 1.0])
    flip[0, 2] = 30
    mask = np.zeros((20, 30), np.uint8)
    mask[2:5, 1:4] = 1
    moved = apply_affine(Sample(gray(20, 30), "fetal_head", mask), flip)
    assert np.array_equal(moved.label, mask[:, ::-1])
    moved = apply_affine(Sample(gray(20, 30), "thyroid_nodule_det", [[1, 2, 4, 5]]), flip)
    assert np.array_equal(moved.label, [[26, 2, 29, 5]])
    moved = apply_affine(Sample(gray(20, 30), "IUGC", [[1, 2], [4, 5], [7, 8]]), flip)
    assert np.array_equal(moved.label, [[29, 2], [26, 5], [23, 8]])  # anatomical points keep their order


def test_interchangeable_points_are_renumbered_left_to_right_after_every_change():
    sample = Sample(gray(20, 30), "FUGC", [[4, 5], [1, 2]])
    assert np.array_equal(sample.label, [[1, 2], [4, 5]])  # canonical from the start
    flip = np.diag([-1.0, 1.0, 1.0])
    flip[0, 2] = 30
    assert np.array_equal(apply_affine(sample, flip).label, [[26, 5], [29, 2]])  # the mirror swapped them back
    quarter = np.array([[0.0, -1.0, 20.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # 90° turn
    turned = apply_affine(Sample(gray(20, 30), "fetal_head_axis", [[1, 2], [4, 9]]), quarter).label
    assert np.array_equal(turned, [[11, 4], [18, 1]]) and turned[0, 0] < turned[1, 0]


def test_rotated_box_is_the_box_of_its_corners_and_a_box_pushed_out_is_dropped():
    theta = np.pi / 4
    rot = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    moved = apply_affine(Sample(gray(40, 40), "thyroid_nodule_det", [[10, 0, 20, 10]]), rot)
    corners = np.array([[10, 0], [20, 0], [20, 10], [10, 10]]) @ rot[:2, :2].T
    assert np.allclose(moved.label, [[max(corners[:, 0].min(), 0), corners[:, 1].min(), corners[:, 0].max(),
                                      corners[:, 1].max()]])
    shift = np.eye(3)
    shift[0, 2] = 100
    assert apply_affine(Sample(gray(40, 40), "thyroid_nodule_det", [[1, 1, 5, 5]]), shift).label.shape == (0, 4)


def test_each_task_only_gets_its_allowed_augmentations():
    def steps(task):
        return [type(s).__name__ for s in build_transforms(task, Preprocessing(32), train=True).steps]

    assert steps("fetal_head") == ["RandomAffine", "RandomIntensity", "RandomSpeckle"]
    assert build_transforms("fetal_head", Preprocessing(32), train=True).steps[0].hflip_p == 0.5
    position = build_transforms("fetal_head_pos_cls", Preprocessing(32), train=True).steps[0]
    assert position.hflip_p == 0.0 and position.rotate_deg == 10.0
    assert build_transforms("fetal_head", Preprocessing(32), train=False).steps == ()


def test_position_classes_are_never_mirrored():
    image = np.zeros((32, 32), np.uint8)
    image[:, :8] = 255  # bright on the left
    sample = Sample(image, "fetal_head_pos_cls", 3)
    transform = build_transforms("fetal_head_pos_cls", Preprocessing(32), train=True,
                                 augment=AugmentConfig(photometric_p=0.0))
    for seed in range(20):
        moved, _ = transform(sample, seed)
        assert moved.image[:, :10].mean() > moved.image[:, 22:].mean()


def test_train_transform_is_deterministic_for_a_seed_and_keeps_geometry_of_the_resize():
    sample = Sample(rgb(50, 70), "breast_lesion", np.zeros((50, 70), np.uint8))
    transform = build_transforms("breast_lesion", Preprocessing((48, 64)), train=True)
    (a, ga), (b, gb) = transform(sample, 7), transform(sample, 7)
    assert np.array_equal(a.image, b.image) and ga == gb == ResizeGeometry.create((50, 70), (48, 64))
    assert not np.array_equal(transform(sample, 8)[0].image, a.image)


def test_photometric_steps_keep_letterbox_padding_black():
    sample = Sample(np.full((20, 40), 120, np.uint8), "breast_2cls", 1)
    moved = resize_sample(sample, ResizeGeometry.create((20, 40), (40, 40)))
    transform = build_transforms("breast_2cls", Preprocessing(40), train=True,
                                 augment=AugmentConfig(rotate_deg=0, scale=(1, 1), hflip_p=0, photometric_p=1))
    out, _ = transform(sample, 3)
    assert out.image[:10].max() == 0 and moved.image[:10].max() == 0
    assert out.image[10:30].std() > 0  # speckle added inside the content
