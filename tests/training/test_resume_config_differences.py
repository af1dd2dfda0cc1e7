"""What resume counts as a changed setting: a field added to m2dino after a checkpoint was written is
unchanged while it keeps its default, and a change when it does not."""

from __future__ import annotations

from m2dino.data.transforms import AugmentConfig
from m2dino.training.train_config import TrainConfig
from m2dino.training.trainer_resume import config_differences, field_defaults


def _configuration(**train) -> dict:
    return {"train": {**field_defaults(TrainConfig), **train}, "model": {"image_size": 64},
            "augment": field_defaults(AugmentConfig)}


def test_a_setting_the_checkpoint_predates_is_unchanged_at_its_default():
    now = _configuration()
    saved = {"train": {k: v for k, v in now["train"].items() if k != "label_smoothing"}, "model": {"image_size": 64}}
    assert config_differences(saved, now) == []


def test_a_setting_the_checkpoint_predates_is_a_change_away_from_its_default():
    now = _configuration(label_smoothing=0.1)
    saved = {"train": {k: v for k, v in now["train"].items() if k != "label_smoothing"}, "model": {"image_size": 64}}
    assert config_differences(saved, now) == [{"field": "train.label_smoothing", "checkpoint": 0.0, "now": 0.1}]


def test_recorded_settings_are_compared_and_free_ones_skipped():
    saved = _configuration(lr=0.002, eval_every=10)
    now = _configuration(lr=0.001, eval_every=99)
    assert config_differences(saved, now) == [{"field": "train.lr", "checkpoint": 0.002, "now": 0.001}]
    assert config_differences({"train": saved["train"], "model": {"image_size": 32}}, now)[-1] == {
        "field": "model.image_size", "checkpoint": 32, "now": 64}


def test_a_checkpoint_without_augmentation_settings_trained_with_the_defaults():
    now = _configuration()
    saved = {"train": now["train"], "model": now["model"]}  # written before resume compared augmentation
    assert config_differences(saved, now) == []
    now["augment"]["strength"] = 2.0
    assert config_differences(saved, now) == [{"field": "augment.strength", "checkpoint": 1.0, "now": 2.0}]
