"""The constant predictor (m2dino.evaluation.constant_baseline): one fit per label kind, priors mapped back."""

from __future__ import annotations

import numpy as np

from m2dino.data.synthetic import make_synthetic_samples
from m2dino.evaluation import CONSTANT_FITS, fit_constant_predictor
from m2dino.image import ResizeGeometry
from m2dino.tasks import KINDS, get_task


def test_every_label_kind_has_a_fit():
    assert set(CONSTANT_FITS) == set(KINDS)


def test_predictions_are_constant_and_in_each_images_pixels():
    tasks = ["fetal_head", "fetal_plane_cls", "fetal_head_det", "fetal_head_axis", "fetal_head_circumference"]
    train = make_synthetic_samples(tasks, per_task=4, image_size=(40, 56), seed=0)
    grid = (32, 32)
    for task in tasks:
        predict = fit_constant_predictor(get_task(task), [s for s in train if s.task == task], grid)
        small, large = (ResizeGeometry.create(size, grid, "letterbox") for size in ((40, 56), (80, 112)))
        a, b = predict(small), predict(large)
        assert type(a) is type(b)
        if hasattr(a, "mask"):
            assert a.mask.shape == (40, 56) and b.mask.shape == (80, 112)
        if hasattr(a, "boxes"):
            np.testing.assert_allclose(b.boxes, 2 * a.boxes)  # the same box, in each image's pixels
        if hasattr(a, "points"):
            np.testing.assert_allclose(b.points, 2 * a.points)
        if hasattr(a, "class_index"):
            assert a.class_index == b.class_index and abs(a.probs.sum() - 1) < 1e-9
