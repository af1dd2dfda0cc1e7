import numpy as np
import pytest

from m2dino.data import DataError, Sample
from m2dino.tasks import UnknownTaskError

from .helpers import gray, rgb


def test_gray_images_become_three_channels_and_original_size_defaults_to_the_image():
    sample = Sample(gray(10, 12), "fetal_plane_cls", 3, source="a.png")
    assert sample.image.shape == (10, 12, 3) and sample.image.dtype == np.uint8
    assert np.array_equal(sample.image[..., 0], sample.image[..., 2])
    assert sample.original_size == (10, 12) and sample.size == (10, 12)


def test_rgba_and_16_bit_images_are_rejected_with_the_source_named():
    with pytest.raises(DataError, match="a.png: RGBA image"):
        Sample(np.zeros((4, 4, 4), np.uint8), "fetal_plane_cls", 0, source="a.png")
    with pytest.raises(DataError, match="b.png: uint16 image; expected uint8"):
        Sample(np.zeros((4, 4), np.uint16), "fetal_plane_cls", 0, source="b.png")


def test_labels_are_converted_to_their_canonical_types():
    mask = Sample(rgb(6, 8), "cardiac_multi", np.full((6, 8), 3, np.int64)).label
    assert mask.dtype == np.uint8 and mask.max() == 3
    boxes = Sample(rgb(6, 8), "thyroid_nodule_det", [1, 2, 5, 6]).label
    assert boxes.shape == (1, 4) and boxes.dtype == np.float64
    assert Sample(rgb(6, 8), "fetal_head_circumference", np.float32(12.5)).label == 12.5
    assert isinstance(Sample(rgb(6, 8), "breast_3cls", np.int64(2)).label, int)


@pytest.mark.parametrize("task, label, message", [
    ("cardiac_multi", np.full((6, 8), 4, np.uint8), r"mask values \[4\] out of range; expected class indices 0..3"),
    ("fetal_head", np.zeros((6, 9), np.uint8), r"mask of size 6×9 but the image is 6×8 \(H×W\)"),
    ("fetal_head", np.zeros((6, 8), np.float32), "mask of dtype float32; expected integer class indices"),
    ("breast_3cls", 3, r"class 3 out of range; expected 0..2"),
    ("breast_3cls", 1.0, "label 1.0 of type float; expected an int class index"),
    ("breast_3cls", True, "expected an int class index"),
    ("thyroid_nodule_det", [[5, 2, 1, 6]], "x_max < x_min"),
    ("thyroid_nodule_det", [[1, 2, 5, 6], [1, 2, 5, 6]], "2 boxes; the task allows at most 1"),
    ("thyroid_nodule_det", [1, 2, 5], r"boxes of shape \(3,\); expected n×4"),
    ("IUGC", np.zeros((2, 2)), r"keypoints of shape \(2, 2\); expected 3×2"),
    ("IUGC", [[0, 0], [1, np.nan], [2, 2]], "NaN or infinite"),
    ("fetal_head_circumference", "12", "expected a finite number"),
])
def test_invalid_labels_raise_a_clear_error(task, label, message):
    with pytest.raises(DataError, match=message):
        Sample(rgb(6, 8), task, label, source="x.png")


def test_unknown_task_is_named():
    with pytest.raises(UnknownTaskError, match="unknown task id 'fetal_haed'"):
        Sample(rgb(6, 8), "fetal_haed", 0)


def test_replace_validates_again():
    sample = Sample(rgb(6, 8), "breast_3cls", 1)
    assert sample.replace(label=2).label == 2
    with pytest.raises(DataError, match="class 5 out of range"):
        sample.replace(label=5)
