"""`predict_batches` (the loop behind `m2dino evaluate` and in-loop validation) gives what
`model.predict` gives image by image."""

import dataclasses

import numpy as np
import pytest

from m2dino.models.batch_prediction import predict_batches

from .helpers import FOUR_TYPES, tiny_model


def _images(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    sizes = [(40, 50), (64, 32), (33, 47), (48, 48), (20, 90)]
    return [rng.integers(0, 256, size=(*sizes[i % len(sizes)], 3), dtype=np.uint8) for i in range(count)]


def _assert_same_prediction(got, expected) -> None:
    assert type(got) is type(expected)
    for field in dataclasses.fields(expected):
        a, b = getattr(got, field.name), getattr(expected, field.name)
        if isinstance(b, np.ndarray):
            assert a.shape == b.shape and a.dtype == b.dtype
            np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
        elif isinstance(b, float):
            assert a == pytest.approx(b, abs=1e-5)
        else:
            assert a == b


@pytest.mark.parametrize("task", FOUR_TYPES + ["fetal_head_circumference"])
def test_batches_give_what_predict_gives_image_by_image(task):
    model = tiny_model(seed=2, tasks=FOUR_TYPES + ["fetal_head_circumference"])
    images = _images(5)
    expected = [model.predict(image, task=task) for image in images]
    got = list(predict_batches(model, iter(images), task, batch_size=2))  # 2 + 2 + 1: a ragged last batch
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        _assert_same_prediction(a, b)


def test_the_models_mode_is_restored_and_a_bad_batch_size_refused():
    model = tiny_model().train()
    assert len(list(predict_batches(model, _images(3), "fetal_head", batch_size=8))) == 3
    assert model.training
    with pytest.raises(ValueError, match="batch size must be at least 1"):
        list(predict_batches(model, _images(1), "fetal_head", batch_size=0))
