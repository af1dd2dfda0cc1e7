"""Small hand-made samples for engine tests (the synthetic suite has its own tests)."""

import numpy as np

from m2dino.data import Sample

TASKS = ["fetal_head", "fetal_plane_cls", "thyroid_nodule_det", "IUGC", "fetal_head_circumference"]


def make_samples(task: str, n: int, seed: int = 0) -> list[Sample]:
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        image = (rng.random((40, 50)) * 60).astype(np.uint8)
        if task == "fetal_head":
            label = np.zeros((40, 50), np.uint8)
            label[10:30, 15:35] = 1
            image[label == 1] += 150
        elif task == "fetal_plane_cls":
            label = i % 6
            image += np.uint8(label * 30)
        elif task == "thyroid_nodule_det":
            image[10:20, 10:25] += 150
            label = np.array([[10, 10, 25, 20]], float)
        elif task == "IUGC":
            label = np.array([[5, 5], [20, 30], [40, 10]], float)
        else:
            label = float(100 + i)
        samples.append(Sample(image, task, label, source=f"fake:{task}:{i}"))
    return samples


def fake_data(tasks=TASKS, n_train: int = 8, n_val: int = 4) -> tuple[dict, dict]:
    return ({t: make_samples(t, n_train, seed=1) for t in tasks}, {t: make_samples(t, n_val, seed=2) for t in tasks})
