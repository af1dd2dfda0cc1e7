"""Augmentation throughput: the device path (`m2dino.data.augment_batch`, batched torch, here on the
CPU) against the worker path (numpy/PIL steps per sample in a DataLoader worker).

Both start from samples already decoded and resized to the model's input (what a worker holds after
reading the cache) and end with the batch the model takes (normalised float32 pixels and moved
labels), so the time is the augmentation and the normalisation only. The device path is split in
its two shares: what stays in the worker (drawing the parameters from each seed, collating uint8)
and what runs on the training device (`augment_batch`). Times are paired against the worker path
(`harness.timing.PairedTimer`), with ``torch.set_num_threads(threads)``; numpy/PIL use one thread
whatever ``threads`` is.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np
import torch

from harness.timing import PairedTimer
from m2dino.data import Collate, DrawParameters, augment_batch, build_transforms, make_synthetic_samples, resize_sample
from m2dino.image import Preprocessing

TASKS = ("fetal_head", "fetal_plane_cls")  # a mask that moves with the image, and a class that does not


def _batch_maker(task: str, size: int, count: int, batch_size: int) -> Callable[[bool], list]:
    """``make(on_device)`` -> the next batch's samples after their worker-side steps, cycling
    through ``count`` resized synthetic samples with a fresh seed per sample."""
    pre = Preprocessing(size)
    resized = [resize_sample(s, pre.geometry(s.size))
               for s in make_synthetic_samples([task], per_task=count, image_size=size, seed=3)]
    steps = build_transforms(task, pre, train=True).steps
    draw = DrawParameters(steps)
    seeds = itertools.count()

    def make(on_device: bool) -> list:
        items = []
        for _ in range(batch_size):
            seed = next(seeds)
            sample = resized[seed % count]
            rng = np.random.default_rng(seed)
            if on_device:
                sample = draw(sample, rng)
            else:
                for step in steps:
                    sample = step(sample, rng)
            items.append((sample, pre.geometry(sample.size)))
        return items

    return make


def augment_rates(sizes: Sequence[int] = (128, 224), threads: Sequence[int] = (1, 2), count: int = 32,
                  batch_size: int = 16, rounds: int = 5, tasks: Sequence[str] = TASKS) -> list[dict]:
    """One row per (task, size, threads): img/s of the worker path, of the device path in all and of
    each of its shares, and the paired ratio device / worker of seconds per batch (< 1: the device
    path costs less CPU time, counting both its shares)."""
    rows = []
    before = torch.get_num_threads()
    try:
        for task, size, thread_count in itertools.product(tasks, sizes, threads):
            torch.set_num_threads(thread_count)
            pre = Preprocessing(size)
            make = _batch_maker(task, size, count, batch_size)
            worker_collate, device_collate = Collate(pre), Collate(pre, on_device=True)
            ready = device_collate(make(True))

            def worker_path() -> None:
                worker_collate(make(False))

            def device_worker_share() -> None:
                device_collate(make(True))

            def device_share() -> None:
                augment_batch(ready, "cpu", pre)

            def device_path() -> None:
                augment_batch(device_collate(make(True)), "cpu", pre)

            timer = PairedTimer(warmup=1)
            compared = timer.compare(worker_path, {"device path": device_path,
                                                   "device path, worker share": device_worker_share,
                                                   "device path, device share": device_share}, rounds)
            worker_s = float(np.median([s for c in compared.values() for s in c["reference_s"]]))
            row = {"task": task, "size": size, "threads": thread_count, "batch_size": batch_size,
                   "worker_path_img_s": batch_size / worker_s}
            for name, key in (("device path", "device_path"), ("device path, worker share", "device_worker_share"),
                              ("device path, device share", "device_share")):
                row[f"{key}_img_s"] = batch_size / float(np.median(compared[name]["variant_s"]))
            row["device_over_worker"] = compared["device path"]["ratio"]
            row["timer"] = timer.record()
            rows.append(row)
    finally:
        torch.set_num_threads(before)
    return rows
