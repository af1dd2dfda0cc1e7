"""Every malformed config.json field is one line naming the field and what was expected
(a missing backbone used to become 67 shape mismatches, `std: [0, 0, 0]` NaN predictions)."""

import json
from dataclasses import fields

import pytest

from m2dino import M2DINO, M2DINOConfig
from m2dino.models.model_config import FIELD_SHAPES

DROP = object()  # a field to remove from the saved config


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    M2DINO(M2DINOConfig(backbone="test", tasks=["fetal_head"], image_size=32,
                        decoder_features=8)).save_pretrained(folder)
    return folder, json.loads((folder / "config.json").read_text())


def with_config(saved, tmp_path, content):
    folder, _ = saved
    for name in ("model.safetensors", "README.md"):
        (tmp_path / name).symlink_to(folder / name)
    (tmp_path / "config.json").write_text(json.dumps(content))
    return tmp_path / "config.json"


def edited(saved, **changes):
    config = {**saved[1], **changes}
    return {k: v for k, v in config.items() if v is not DROP}


@pytest.mark.parametrize("change, message", [
    ({"num_experts": "four"}, "field 'num_experts' is \"four\"; expected an integer"),
    ({"backbone": DROP}, "field 'backbone' missing; expected a backbone name"),
    ({"tasks": "fetal_head"}, "field 'tasks' is \"fetal_head\"; expected a list of task ids"),
    ({"image_size": [32]}, "field 'image_size' is \\[32\\]; expected an integer or \\[height, width\\]"),
    ({"top_k": True}, "field 'top_k' is true; expected an integer"),
    ({"mean": [0.5, 0.5]}, "field 'mean' is \\[0.5, 0.5\\]; expected null or 3 numbers"),
    ({"std": [0, 0, 0]}, "std=\\(0, 0, 0\\): expected 3 positive numbers"),
])
def test_a_malformed_field_is_one_line_naming_it(saved, tmp_path, change, message):
    path = with_config(saved, tmp_path, edited(saved, **change))
    with pytest.raises(ValueError, match=message) as err:
        M2DINO.from_pretrained(tmp_path)
    assert "\n" not in str(err.value)
    if "std=" not in message:
        assert str(err.value).startswith(f"{path}: field")


def test_a_config_that_is_not_an_object(saved, tmp_path):
    path = with_config(saved, tmp_path, [saved[1]])
    with pytest.raises(ValueError, match=f"{path}: a JSON list; expected an object of config fields"):
        M2DINO.from_pretrained(tmp_path)


def test_every_field_has_a_shape_check():
    assert set(FIELD_SHAPES) == {f.name for f in fields(M2DINOConfig)}


def test_the_unedited_file_still_loads(saved):
    assert M2DINO.from_pretrained(saved[0]).task_ids == ["fetal_head"]
