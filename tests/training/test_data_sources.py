import numpy as np
import pytest

from m2dino.data import Sample
from m2dino.training.data_sources import TrainingData


def shared_image_data(n=20):
    """Two tasks labelling the same images (like HC18's mask and box) plus one task of its own."""
    image = np.zeros((16, 16), np.uint8)
    seg = [Sample(image, "fetal_head", np.zeros((16, 16), np.uint8), source=f"img{i}") for i in range(n)]
    det = [Sample(image, "fetal_head_det", np.array([[1, 1, 5, 5]], float), source=f"img{i}") for i in range(n)]
    cls = [Sample(image, "breast_2cls", i % 2, source=f"other{i}") for i in range(n)]
    return TrainingData({"fetal_head": seg, "fetal_head_det": det, "breast_2cls": cls}, {}, "test")


def test_a_fraction_keeps_the_same_images_across_tasks_that_share_them():
    subset = shared_image_data().fraction(0.3, seed=1)
    seg = {s.source for s in subset.train["fetal_head"]}
    det = {s.source for s in subset.train["fetal_head_det"]}
    assert seg == det and 2 <= len(seg) < 20
    total = sum(len(v) for v in subset.train.values())
    assert 0.2 * 60 <= total <= 0.4 * 60
    assert subset.fraction(1.0).train == subset.train
    with pytest.raises(ValueError, match="data fraction must be in \\(0, 1\\]"):
        subset.fraction(0.0)


def test_merging_sources_rejects_a_task_given_twice():
    data = shared_image_data()
    left = data.restrict(["fetal_head"])
    merged = left.merge(data.restrict(["breast_2cls"]))
    assert sorted(merged.train) == ["breast_2cls", "fetal_head"]
    with pytest.raises(ValueError, match="tasks \\['fetal_head'\\] come from both"):
        merged.merge(left)
