"""Validation reads each held-out sample once per evaluation: a lazy validation set decodes its
images on every pass, so predicting and collecting the ground truth share one pass."""

from __future__ import annotations

from collections.abc import Sequence

from m2dino.training.validation import error_scales, evaluate_model, validate

from .fake_data import fake_data
from .test_engine import tiny_model


class CountingSamples(Sequence):
    """A sequence that counts how many times it is read from start to end (a decode each, if lazy)."""

    def __init__(self, samples):
        self.samples, self.passes = list(samples), 0

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        return self.samples[index]

    def __iter__(self):
        self.passes += 1
        return iter(self.samples)


def test_each_task_is_read_once_and_scored_like_a_plain_list():
    _, val = fake_data(tasks=["fetal_head", "fetal_plane_cls"], n_val=5)
    counted = {task: CountingSamples(samples) for task, samples in val.items()}
    model = tiny_model(["fetal_head", "fetal_plane_cls"]).eval()
    metrics = evaluate_model(model, counted, batch_size=2)
    assert {task: c.passes for task, c in counted.items()} == {"fetal_head": 1, "fetal_plane_cls": 1}
    assert metrics == evaluate_model(model, val, batch_size=2)
    assert metrics["segmentation"]["fetal_head"]["num_samples"] == 5


def test_the_error_scales_come_from_the_same_single_pass():
    """Keypoint and regression tasks are scored against an error scale read from the held-out labels
    and sizes; `validate` takes them from the pass that predicts, not from a second decode."""
    tasks = ["IUGC", "fetal_head_circumference", "fetal_head"]
    _, val = fake_data(tasks=tasks, n_val=5)
    counted = {task: CountingSamples(samples) for task, samples in val.items()}
    metrics, scales = validate(tiny_model(tasks).eval(), counted, batch_size=2)
    assert {task: c.passes for task, c in counted.items()} == dict.fromkeys(tasks, 1)
    assert scales == error_scales(val) and set(scales) == {"IUGC", "fetal_head_circumference"}
    assert scales["fetal_head_circumference"] == 102.0  # the mean target: 100..104
    assert metrics == evaluate_model(tiny_model(tasks).eval(), val, batch_size=2)
