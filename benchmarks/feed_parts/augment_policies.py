"""Augmentation throughput per policy (`m2dino.data.AugmentConfig.policy` and ``strength``) on the
device path, here on the CPU: drawing each sample's parameters and collating (the worker's share)
plus `augment_batch` (the device's share), from samples already decoded and resized. Each policy is
timed paired against the default policy (`harness.timing.PairedTimer`), with
``torch.set_num_threads(threads)``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from harness.timing import PairedTimer
from m2dino.data import (
    AugmentConfig,
    Collate,
    DrawParameters,
    augment_batch,
    build_transforms,
    make_synthetic_samples,
    resize_sample,
)
from m2dino.image import Preprocessing

TASKS = ("fetal_head", "fetal_plane_cls")  # a mask that moves with the image, and a class that does not
# The study's four cells of factor 8 (issue 23): today's default, stronger, TrivialAugment, ultrasound-specific
POLICIES: Mapping[str, AugmentConfig] = {
    "default": AugmentConfig(), "strong (strength 2)": AugmentConfig(strength=2.0),
    "trivial": AugmentConfig(policy="trivial"), "ultrasound": AugmentConfig(policy="ultrasound")}


def _device_path(task: str, size: int, augment: AugmentConfig, count: int, batch_size: int) -> Callable[[], None]:
    """One batch through the device path: draw each sample's parameters from a fresh seed, collate
    uint8, augment; cycling through ``count`` resized synthetic samples."""
    pre = Preprocessing(size)
    resized = [resize_sample(s, pre.geometry(s.size))
               for s in make_synthetic_samples([task], per_task=count, image_size=size, seed=3)]
    draw = DrawParameters(build_transforms(task, pre, train=True, augment=augment).steps)
    collate, seeds = Collate(pre, on_device=True), itertools.count()

    def run() -> None:
        items = []
        for _ in range(batch_size):
            seed = next(seeds)
            sample = draw(resized[seed % count], np.random.default_rng(seed))
            items.append((sample, pre.geometry(sample.size)))
        augment_batch(collate(items), "cpu", pre)

    return run


def policy_rates(size: int = 128, threads: int = 1, count: int = 32, batch_size: int = 16, rounds: int = 5,
                 tasks: Sequence[str] = TASKS, policies: Mapping[str, AugmentConfig] = POLICIES) -> list[dict]:
    """One row per (task, policy): img/s of the device path (both shares) and the paired ratio of
    seconds per batch against the default policy (> 1: slower)."""
    rows = []
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for task in tasks:
            paths = {name: _device_path(task, size, augment, count, batch_size) for name, augment in policies.items()}
            reference, *_ = paths.values()
            timer = PairedTimer(warmup=1)
            compared = timer.compare(reference, dict(list(paths.items())[1:]), rounds)
            reference_s = float(np.median([s for c in compared.values() for s in c["reference_s"]]))
            rows.append({"task": task, "policy": next(iter(paths)), "size": size, "threads": threads,
                         "img_s": batch_size / reference_s, "over_default": 1.0})
            for name, result in compared.items():
                rows.append({"task": task, "policy": name, "size": size, "threads": threads,
                             "img_s": batch_size / float(np.median(result["variant_s"])),
                             "over_default": result["ratio"]["median"], "timer": timer.record()})
    finally:
        torch.set_num_threads(before)
    return rows
