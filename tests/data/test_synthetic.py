import time

import numpy as np
import pytest

from m2dino.data import DataError, read_fmc
from m2dino.data.synthetic import make_synthetic_samples, synthetic_tasks, write_synthetic
from m2dino.tasks import get_task, list_tasks


@pytest.fixture(scope="module")
def suite():
    return make_synthetic_samples(per_task=3, image_size=64, seed=0)


def test_covers_the_27_benchmark_tasks_with_their_label_types(suite):
    assert [s.task for s in suite[::3]] == [t.id for t in list_tasks()]
    assert set(synthetic_tasks()) >= {t.id for t in list_tasks(benchmark=None)}
    for sample in suite:
        spec = get_task(sample.task)
        assert sample.image.shape == (64, 64, 3) and sample.source.startswith("synthetic:")
        if spec.label_kind == "mask":
            assert 0 < (sample.label > 0).sum() < 64 * 64 and sample.label.max() < spec.num_classes
        elif spec.label_kind == "boxes":
            x0, y0, x1, y1 = sample.label[0]
            assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64
        elif spec.label_kind == "keypoints":
            assert sample.label.shape == (spec.num_keypoints, 2)
            assert np.all((sample.label > 0) & (sample.label < 64))


def test_every_class_and_segmentation_class_appears():
    for spec in list_tasks(type="classification"):
        samples = make_synthetic_samples([spec.id], per_task=spec.num_classes, image_size=48)
        assert [s.label for s in samples] == list(range(spec.num_classes))
    for spec in list_tasks(type="segmentation"):
        labels = [s.label for s in make_synthetic_samples([spec.id], per_task=4, image_size=64)]
        present = set(np.unique(np.stack(labels)).tolist())
        assert present == set(range(spec.num_classes)), spec.id


def test_deterministic_per_seed_and_split():
    a = make_synthetic_samples(["fetal_head", "IUGC"], per_task=2, image_size=40, seed=1)
    b = make_synthetic_samples(["fetal_head", "IUGC"], per_task=2, image_size=40, seed=1)
    assert all(np.array_equal(x.image, y.image) and np.array_equal(x.label, y.label) for x, y in zip(a, b))
    test = make_synthetic_samples(["fetal_head", "IUGC"], per_task=2, image_size=40, seed=1, split="test")
    other = make_synthetic_samples(["fetal_head", "IUGC"], per_task=2, image_size=40, seed=2)
    for x, y, z in zip(a, test, other):
        assert not np.array_equal(x.image, y.image) and not np.array_equal(x.image, z.image)
    # one task's images do not depend on which other tasks are generated with it
    alone = make_synthetic_samples(["IUGC"], per_task=2, image_size=40, seed=1)
    assert np.array_equal(alone[1].image, a[3].image)


def test_any_size_including_non_square():
    tasks = ["cardiac_multi", "lung_2cls", "fetal_femur"]
    for sample in make_synthetic_samples(tasks, per_task=1, image_size=(48, 80)):
        assert sample.image.shape == (48, 80, 3)
        if sample.spec.label_kind == "mask":
            assert sample.label.shape == (48, 80)


def test_head_circumference_matches_the_axis_and_the_box():
    hc, = make_synthetic_samples(["fetal_head_circumference"], per_task=1, image_size=150)
    axis, = make_synthetic_samples(["fetal_head_axis"], per_task=1, image_size=150)
    major = np.hypot(*(axis.label[1] - axis.label[0]))  # 1 mm per pixel at 150 px
    assert np.pi * major / 2 < hc.label < np.pi * major  # between the minor-axis and major-axis circles


def test_tasks_look_different_from_each_other(suite):
    # Field of view differs with the probe: sector images have black top corners, linear ones none.
    by_task = {s.task: s.image[..., 0] for s in suite}
    assert by_task["fetal_head"][:4, :4].max() == 0 and by_task["breast_lesion"][8:12, 4:8].max() > 0


def test_fast_enough_for_the_embedded_training_run():
    start = time.process_time()
    make_synthetic_samples(per_task=8, image_size=96)
    assert time.process_time() - start < 3.0  # 27 × 8 images (about 0.4 s on one core)


def test_unknown_task_and_bad_arguments():
    with pytest.raises(DataError, match="no synthetic recipe for task"):
        from m2dino.tasks import TaskSpec, register_task, unregister_task

        register_task(TaskSpec("my_task", "classification", 2, ("a", "b"), "x", "y"))
        try:
            make_synthetic_samples(["my_task"], per_task=1)
        finally:
            unregister_task("my_task")
    with pytest.raises(ValueError, match="image_size at least 16"):
        make_synthetic_samples(["fetal_head"], per_task=1, image_size=8)


def test_written_suite_reads_back(tmp_path):
    roots = write_synthetic(tmp_path, per_task=2, image_size=32, splits=("train", "val"),
                            tasks=["fetal_head", "breast_3cls", "FUGC"])
    assert set(roots) == {"train", "val"}
    key = lambda s: s.meta["name"]  # noqa: E731  (CSVs are read in file-name order)
    back = sorted(read_fmc(roots["val"]), key=key)
    again = sorted(make_synthetic_samples(["fetal_head", "breast_3cls", "FUGC"], per_task=2, image_size=32,
                                          split="val"), key=key)
    assert len(back) == 6
    for x, y in zip(back, again, strict=True):
        assert x.task == y.task and np.array_equal(x.image, y.image) and np.array_equal(x.label, y.label)
