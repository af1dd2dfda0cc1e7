"""`m2dino.limits`: one policy, each bound named in its refusal and raised by its environment variable."""

import numpy as np
import pytest
from PIL import Image

from m2dino.image import read_image, to_rgb_uint8
from m2dino.image.io import ImageTooLargeError
from m2dino.limits import LimitError, Limits, check_bound, current, finite_number, positive_int


def test_bounds_come_from_the_environment(monkeypatch):
    assert current() == Limits()
    monkeypatch.setenv("M2DINO_MAX_EXPERTS", "8")
    assert current().experts == 8
    with pytest.raises(LimitError, match="num_experts=9 exceeds m2dino's limit of 8 .*M2DINO_MAX_EXPERTS"):
        check_bound("num_experts", 9, "experts")
    monkeypatch.setenv("M2DINO_MAX_EXPERTS", "many")
    with pytest.raises(LimitError, match="M2DINO_MAX_EXPERTS='many': expected a whole number"):
        current()


@pytest.mark.parametrize("value", [0, -5, 2.5, True, "3"])
def test_positive_int_names_the_input(value):
    with pytest.raises(LimitError, match=r"^--batch-size=.*: expected a whole number >= 1$"):
        positive_int("--batch-size", value)


def test_positive_int_within_its_bound():
    assert positive_int("--tile-width", 512, "tile_width") == 512
    with pytest.raises(LimitError, match="--tile-width=100,000 exceeds m2dino's limit of 8,192"):
        positive_int("--tile-width", 100_000, "tile_width")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0])
def test_finite_number_in_range(value):
    with pytest.raises(LimitError, match=r"--nsd-tolerance=.*: expected a finite number in \[0, inf\]"):
        finite_number("--nsd-tolerance", value, low=0)
    assert finite_number("--nsd-tolerance", 2, low=0) == 2.0


def test_an_image_declaring_too_many_pixels_is_refused_before_decoding(tmp_path, monkeypatch):
    monkeypatch.setenv("M2DINO_MAX_IMAGE_PIXELS", "10000")
    path = tmp_path / "wide.png"
    Image.new("L", (200, 100)).save(path)
    with pytest.raises(ImageTooLargeError, match=r"wide.png: 200×100 image \(20,000 pixels\) exceeds .* 10,000"):
        read_image(path)
    with pytest.raises(ImageTooLargeError, match="array: 200×100 image"):
        to_rgb_uint8(np.zeros((100, 200), np.uint8), name="array")
    assert to_rgb_uint8(np.zeros((50, 100), np.uint8)).shape == (50, 100, 3)
