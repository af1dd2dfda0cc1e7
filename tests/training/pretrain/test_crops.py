"""Multi-crop for ultrasound: crops inside the field of view, the size policy, black stays black."""

import numpy as np
import pytest

from m2dino.data.errors import DataError
from m2dino.training.pretrain.crops import (
    CropConfig,
    _augment,
    field_of_view,
    multi_crop,
)


def sector_image(height=96, width=128):
    """A fan of speckle on a black frame, like a curvilinear probe's image."""
    rng = np.random.default_rng(1)
    y, x = np.mgrid[:height, :width]
    angle = np.degrees(np.arctan2(x - width / 2, y + 10))
    radius = np.hypot(x - width / 2, y + 10)
    fan = (np.abs(angle) < 35) & (radius > 20) & (radius < height)
    image = np.zeros((height, width, 3), np.uint8)
    image[fan] = rng.integers(40, 255, size=(fan.sum(), 1))
    return image


def test_crops_stay_inside_the_field_of_view():
    image = sector_image()
    fov = field_of_view(image)
    rows, cols = np.nonzero(fov)
    config = CropConfig(global_size=32, local_size=16, local_crops=4, global_scale=(0.2, 0.5))
    rng = np.random.default_rng(0)
    for _ in range(20):
        globals_, locals_, boxes = multi_crop(image, config, rng)
        assert [g.shape for g in globals_] == [(32, 32, 3)] * 2 and [c.shape for c in locals_] == [(16, 16, 3)] * 4
        for top, left, height, width in boxes:
            assert rows.min() <= top and top + height <= rows.max() + 1
            assert cols.min() <= left and left + width <= cols.max() + 1
            assert fov[top:top + height, left:left + width].mean() >= config.min_fov_fraction


def test_without_the_field_of_view_crops_land_on_the_black_frame():
    """The control for the test above: crops drawn over the whole frame are often mostly black."""
    image = sector_image()
    fov = field_of_view(image)
    rng = np.random.default_rng(0)
    side = 30
    covers = [fov[top:top + side, left:left + side].mean() for top, left in zip(rng.integers(0, 96 - side, 200),
                                                                                rng.integers(0, 128 - side, 200))]
    assert np.mean(np.array(covers) < 0.75) > 0.3


def test_small_images_are_upscaled_and_far_too_small_ones_name_the_file():
    config = CropConfig(global_size=32, local_size=16, local_crops=1)
    rng = np.random.default_rng(0)
    small = np.full((20, 24, 3), 128, np.uint8)
    globals_, _, boxes = multi_crop(small, config, rng, "small.png")
    assert globals_[0].shape == (32, 32, 3)
    assert max(t + h for t, _, h, _ in boxes) <= 32  # boxes are in the upscaled (32×38) image
    with pytest.raises(DataError, match=r"tiny\.png: image is 6×6 px, too small for 32 px global crops"):
        multi_crop(np.full((6, 6, 3), 128, np.uint8), config, rng, "tiny.png")


def test_augmentations_keep_black_black_and_add_no_colour():
    config = CropConfig(photometric_p=1.0, hflip_p=0.0)
    rng = np.random.default_rng(0)
    black = np.zeros((16, 16, 3), np.uint8)
    assert not _augment(black, config, 1.0, rng).any()
    grey = np.repeat(np.random.default_rng(2).integers(20, 200, (16, 16, 1), dtype=np.uint8), 3, axis=2)
    out = _augment(grey, config, 1.0, rng)
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    assert not np.array_equal(out, grey)
