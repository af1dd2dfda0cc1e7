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


def test_a_fraction_of_a_build_public_root_shares_images_across_task_folders(tmp_path):
    """`m2dino data build-public` writes a copy of a BUSI image per task type (Segmentation/,
    Classification/) and names the original in ``meta``: a fraction must keep or drop both copies."""
    from m2dino.data import read_fmc, write_fmc

    rng = np.random.default_rng(0)
    samples = []
    for i in range(20):
        image = rng.integers(0, 255, (16, 16), dtype=np.uint8)
        meta = {"dataset": "busi", "name": f"benign ({i})"}
        samples += [Sample(image, "breast_lesion", (image > 128).astype(np.uint8), meta=meta),
                    Sample(image, "breast_3cls", i % 3, meta=meta)]
    write_fmc(samples, tmp_path)
    data = TrainingData(read_fmc(tmp_path, lazy=True).by_task(), {}, "root")
    sources = {task: {e.source for e in data.train[task].items} for task in data.train}
    assert not sources["breast_lesion"] & sources["breast_3cls"]  # separate files: paths cannot pair them
    subset = data.fraction(0.3, seed=2)
    names = {task: {e.meta["name"] for e in subset.train[task].items} for task in subset.train}
    assert names["breast_lesion"] == names["breast_3cls"] and len(names["breast_lesion"]) == 6


def test_merging_sources_rejects_a_task_given_twice():
    data = shared_image_data()
    left = data.restrict(["fetal_head"])
    merged = left.merge(data.restrict(["breast_2cls"]))
    assert sorted(merged.train) == ["breast_2cls", "fetal_head"]
    with pytest.raises(ValueError, match="tasks \\['fetal_head'\\] come from both"):
        merged.merge(left)
