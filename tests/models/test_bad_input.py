import numpy as np
import pytest
import torch
from PIL import Image

from m2dino.image import ImageFormatError

from .helpers import tiny_model


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def test_wrong_channel_count(model):
    with pytest.raises(ValueError, match="has 1 channels; expected 3"):
        model(torch.zeros(1, 1, 32, 48), task="fetal_head")


def test_sides_not_multiples_of_16(model):
    with pytest.raises(ValueError,
                       match="input size 30×48: both sides must be positive multiples of the patch size 16"):
        model(torch.zeros(1, 3, 30, 48), task="fetal_head")


def test_nan_inputs(model):
    x = torch.zeros(1, 3, 32, 48)
    x[0, 1, 3, 4] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        model(x, task="fetal_head")


def test_integer_tensors(model):
    with pytest.raises(ValueError, match="must be a float tensor"):
        model(torch.zeros(1, 3, 32, 48, dtype=torch.uint8), task="fetal_head")


def test_16_bit_images(model, tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((20, 20), 40000, dtype=np.uint16)).save(path)
    with pytest.raises(ImageFormatError, match="deep.png: I;16 \\(16-bit\\) image; expected an 8-bit"):
        model.predict(path, task="fetal_head")
    with pytest.raises(ImageFormatError, match="uint16 image; expected uint8"):
        model.predict(np.zeros((20, 20), np.uint16), task="fetal_head")


def test_rgba_images(model, tmp_path):
    path = tmp_path / "alpha.png"
    Image.fromarray(np.zeros((20, 20, 4), np.uint8)).save(path)
    with pytest.raises(ImageFormatError, match="alpha.png: RGBA image \\(4 channels\\); expected gray or RGB"):
        model.predict(path, task="fetal_head")


def test_missing_and_corrupt_files(model, tmp_path):
    with pytest.raises(FileNotFoundError, match="image file not found: .*nope.png"):
        model.predict(tmp_path / "nope.png", task="fetal_head")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ImageFormatError, match="bad.png: not a readable image"):
        model.predict(bad, task="fetal_head")


def test_an_empty_list_a_3d_tensor_and_a_folder_get_one_clear_line(model, tmp_path):
    with pytest.raises(ValueError, match="no images given; expected at least one image"):
        model.predict([], "fetal_head")
    with pytest.raises(ValueError, match=r"pixel_values of shape \(3, 32, 48\); expected a batch B×3×H×W"):
        model(torch.zeros(3, 32, 48), task="fetal_head")
    with pytest.raises(IsADirectoryError, match="is a folder; expected an image file"):
        model.predict(tmp_path, "fetal_head")
