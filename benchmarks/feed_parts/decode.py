"""Decode throughput of one worker: samples per second read and resized to the model's input, from
the PNG files (decode + resize, what a worker does without a cache) and from the sharded resize
cache (a memory-mapped slice, checksummed at first use), at 224 and 512 px.

No augmentation and no collate: with augmentation on the device (`m2dino.data.augment_batch`) this
is the whole of a worker's job. The root is a synthetic FMC root of 512-px PNGs made by
``m2dino data synth`` (`make_root`), as in `benchmarks/data_pipeline.py`; the cache is built first,
so the cache figure is reading, not building. Each rate is the median of ``rounds`` passes over the
same random ``samples``, the PNG and cache passes interleaved (the machine's speed drifts); the
first cache pass, which checks each entry's checksum, is timed separately (``cache, first read``).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from m2dino.data import ResizeCache, read_fmc, resize_sample
from m2dino.image import Preprocessing


def make_root(folder: Path, per_task: int = 8, size: int = 512) -> Path:
    """A synthetic training root of the 27 tasks (``per_task`` images each, ``size`` px), written by
    the ``m2dino data synth`` command; its path."""
    command = [str(Path(sys.executable).with_name("m2dino")), "data", "synth", str(folder), "--per-task", str(per_task),
               "--size", str(size), "--splits", "train"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return folder / "train"


def decode_rates(root: Path, cache_dir: Path, sizes: tuple[int, ...] = (224, 512), samples: int = 200,
                 rounds: int = 3, seed: int = 0) -> list[dict]:
    """One row per (size, source): ``samples_per_s`` of one process (one worker), median over
    ``rounds``, and every round's rate."""
    entries = read_fmc(root, lazy=True).items
    chosen = [entries[i] for i in np.random.default_rng(seed).permutation(len(entries))[:samples]]
    rows = []
    for size in sizes:
        pre = Preprocessing(size)
        cache = ResizeCache(cache_dir / f"{size}", pre.image_size, pre.resize_mode)
        cache.build(chosen, progress=False)

        def from_png() -> None:
            for entry in chosen:
                sample = entry.load()
                resize_sample(sample, pre.geometry(sample.size))

        def from_cache(reader: ResizeCache) -> None:
            for entry in chosen:
                reader.load(entry)

        first_read = ResizeCache(cache_dir / f"{size}", pre.image_size, pre.resize_mode)  # a fresh process's view
        timed = {"cache, first read": [_seconds(lambda: from_cache(first_read))], "PNG": [], "cache": []}
        for _ in range(rounds):
            timed["PNG"].append(_seconds(from_png))
            timed["cache"].append(_seconds(lambda: from_cache(first_read)))  # verified: reading only
        for source, seconds in timed.items():
            rates = [len(chosen) / s for s in seconds]
            rows.append({"size": size, "source": source, "samples": len(chosen),
                         "samples_per_s": statistics.median(rates), "rounds": rates})
    return rows


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
