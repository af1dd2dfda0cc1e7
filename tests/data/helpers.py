"""Small files the data tests write themselves (no test reads ../shared)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(array)).save(path)
    return path


def gray(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width), dtype=np.uint8)


def rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [",".join(header)] + [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


# The loader-determinism harness of the augmentation tests: a few synthetic samples of tasks whose labels
# move with the geometry (mask, boxes, points) and one that does not (a class).
MOVING_TASKS = ["fetal_head", "fetal_head_det", "fetal_femur", "fetal_plane_cls"]


def write_moving_root(out: Path) -> Path:
    from m2dino.data.synthetic import write_synthetic

    return write_synthetic(out, 4, (40, 48), splits=("train",), tasks=MOVING_TASKS)["train"]


def augmented_batches(root: Path, workers: int, augment_on: str = "device", augment=None, steps: int = 5) -> list:
    """(task, pixels, targets) of the first ``steps`` batches at 32 px, augmented on the CPU 'device' when
    ``augment_on`` is "device" (as the trainer does), else as the workers delivered them."""
    import torch

    from m2dino.data import read_fmc
    from m2dino.data.device_augment import augment_batch
    from m2dino.data.loading import LoaderConfig, build_train_loader
    from m2dino.data.sampling import TaskSampler
    from m2dino.image import Preprocessing

    samples = read_fmc(root, lazy=True).by_task()
    sampler = TaskSampler({t: len(s) for t, s in samples.items()}, batch_size=3, seed=5)
    pre = Preprocessing(32)
    loader = build_train_loader(samples, sampler, pre, augment=augment,
                                config=LoaderConfig(num_workers=workers, augment_on=augment_on))
    out = []
    for batch, _ in zip(loader, range(steps)):
        pixels, targets = augment_batch(batch, torch.device("cpu"), pre) if augment_on == "device" \
            else (batch["pixel_values"], batch["targets"])
        out.append((batch["task"], pixels, targets))
    return out


def assert_same_batches(serial: list, parallel: list) -> None:
    import torch

    for (task, pixels, targets), (task2, pixels2, targets2) in zip(serial, parallel, strict=True):
        assert task == task2 and pixels.dtype == torch.float32 and torch.equal(pixels, pixels2)
        pairs = zip(targets, targets2) if isinstance(targets, list) else [(targets, targets2)]
        assert all(torch.equal(a, b) for a, b in pairs)
