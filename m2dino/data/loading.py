"""Feeding the trainer: a dataset that resizes each sample once where it can (the whole training
set in memory when it fits `LoaderConfig.memory_cache_bytes`, else the on-disk resize cache when a
``cache_dir`` is given) and otherwise decodes on access, tolerating bad files if asked; parallel
DataLoader workers; and a loader whose checkpoint state counts the batches the loop consumed.

Batches do not depend on the number of workers: the batch sampler runs in the main process and
hands every sample its own augmentation seed (`SampleKey.seed`), so 0, 2 or 8 workers, with or
without the cache, give bit-identical batches, and a resumed run continues exactly.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..image import Preprocessing, ResizeGeometry
from .cache import ResizeCache
from .collection import LazySample
from .errors import DataError
from .memory_cache import MemoryCache, entry_at, memory_cache_bytes
from .sample import Sample
from .sampling import TaskSampler
from .torch_dataset import AUGMENT_PLACES, Collate, MultiTaskDataset, SampleKey, TaskBatchSampler
from .transforms import AugmentConfig, SampleTransform

logger = logging.getLogger(__name__)

BAD_SAMPLE_KEY = "bad_samples"  # meta of a stand-in sample: the entries it replaced, with their errors


@dataclass(frozen=True)
class LoaderConfig:
    """How training batches are produced; none of it but ``augment_on`` changes what the batches hold.

    ``num_workers`` None: `default_num_workers`. ``pin_memory`` None: on when training on CUDA.
    ``cache_dir``: resize every image once to the model's input size and keep it there, in shards
    (`m2dino.data.cache`; missing entries are built before the first step). Without it, a training
    set whose resized pixels (one image per image file, plus masks) fit ``memory_cache_bytes`` is
    decoded and resized once, before the first step, and held in memory that the workers share
    (`m2dino.data.memory_cache`); 0 turns that off, and a larger set is decoded at every use (build
    a ``cache_dir`` for it: `m2dino data cache`). The default, 2 GiB, holds about 14,000 images at
    224 px (10,000 with a mask each) or 43,000 at 128 px; each training process holds its own copy.
    ``skip_bad_samples``: a sample whose file is missing or unreadable is
    replaced by the next readable sample of its task and counted, instead of stopping the run.
    ``augment_on``: where the random augmentation runs (`m2dino.data.device_augment`): "device",
    batched on the training device after the workers decoded and resized (the same parameter
    draws, float32 without uint8 rounding between steps, so the numbers differ from "worker"'s
    while their distributions match), or "worker", in each DataLoader worker with numpy/PIL.
    Neither choice depends on the number of workers. It sits here, not in `AugmentConfig`,
    because it says where work runs (like ``num_workers``), not what the augmentation is.
    "device" is the default: on one CPU thread it costs 0.40-0.59× the worker path's CPU time per
    image (both of its shares counted; 128 and 224 px, a mask and a class task), and on a GPU its
    main-process share leaves the CPU. The worker path measured faster only where torch's ops in
    the main process ran two threads on two cores already loaded ~3× (2-3× slower there; the
    model's own step slowed 8× the same way), and it may still win on a CPU-only run whose idle
    cores let the workers hide the augmentation behind the step (not measured):
    ``benchmarks/feed_parts/augment.py``.
    """

    num_workers: int | None = None
    pin_memory: bool | None = None
    prefetch_factor: int = 4
    persistent_workers: bool = True
    cache_dir: str | None = None
    skip_bad_samples: bool = False
    memory_cache_bytes: int = 2 * 1024**3
    augment_on: str = "device"

    def __post_init__(self) -> None:
        if self.augment_on not in AUGMENT_PLACES:
            raise ValueError(f"augment_on must be one of {AUGMENT_PLACES}, got {self.augment_on!r}")
        if self.num_workers is not None and self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
        if self.memory_cache_bytes < 0:
            raise ValueError(f"memory_cache_bytes must be >= 0 (0: off), got {self.memory_cache_bytes}")
        if self.prefetch_factor < 1:
            raise ValueError(f"prefetch_factor must be >= 1, got {self.prefetch_factor}")


def default_num_workers(num_processes: int = 1) -> int:
    """One worker per CPU core this process may use, less one for the training loop, at most 8
    (beyond that, decoding is rarely the bottleneck and each worker holds its own prefetched batches)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(0, min(8, cores // max(1, num_processes) - 1))


class TrainDataset(MultiTaskDataset):
    """`MultiTaskDataset` whose entries stay undecoded until a worker asks for them, or come
    resized from a `ResizeCache` (on disk) or a `MemoryCache` (built from these samples);
    optionally replacing unreadable samples."""

    def __init__(self, samples: Mapping[str, Sequence[Sample]], preprocessing: Preprocessing, train: bool,
                 augment: AugmentConfig | None = None, cache: ResizeCache | MemoryCache | None = None,
                 skip_bad_samples: bool = False, augment_on: str = "worker") -> None:
        super().__init__(samples, preprocessing, train, augment, augment_on)
        if cache is not None and (cache.image_size, cache.resize_mode) != (preprocessing.image_size,
                                                                            preprocessing.resize_mode):
            raise DataError(f"{cache!r} holds images at {cache.image_size} ({cache.resize_mode}), but the model "
                            f"takes {preprocessing.image_size} ({preprocessing.resize_mode})")
        self.cache, self.skip_bad_samples = cache, skip_bad_samples

    def __getitem__(self, key: SampleKey | tuple) -> tuple[Sample, ResizeGeometry]:
        key = SampleKey(*key)
        items = self.samples[key.task]
        if not self.skip_bad_samples:
            return self._get(key.task, key.index, key.seed)
        errors = []
        for offset in range(len(items)):  # the next readable sample of the task stands in, deterministically
            index = (key.index + offset) % len(items)
            try:
                sample, geometry = self._get(key.task, index, key.seed)
            except DataError as err:
                errors.append(str(err))
                continue
            if errors:
                sample.meta[BAD_SAMPLE_KEY] = errors
            return sample, geometry
        raise DataError(f"task {key.task!r}: none of its {len(items)} samples is readable; first error: {errors[0]}")

    def _get(self, task: str, index: int, seed: int | None) -> tuple[Sample, ResizeGeometry]:
        entry = entry_at(self.samples[task], index)
        transform = self.transforms[task]
        try:
            if self.cache is None:
                sample = entry.load() if isinstance(entry, LazySample) else entry
                return transform(sample, seed)
            if isinstance(self.cache, MemoryCache):
                sample, geometry = self.cache.get(task, index)
            else:
                sample, geometry = self.cache.load(entry)
        except DataError:
            raise
        except OSError as err:  # e.g. a file that turned unreadable under a lazy loader
            raise DataError(f"{entry.source}: {err}") from err
        return _augment(transform, sample, seed), geometry


def _augment(transform: SampleTransform, sample: Sample, seed: int | None) -> Sample:
    """The transform's steps after its resize, on an already resized sample (same random stream
    as `SampleTransform.__call__`, so cached and uncached samples are augmented identically)."""
    generator = np.random.default_rng(seed)
    for step in transform.steps:
        sample = step(sample, generator)
    return sample


class TrainLoader:
    """A DataLoader over a `TaskSampler` whose sampler state is the batches the loop consumed.

    With workers, the batch sampler runs ahead of the training loop by the prefetched batches, so
    its position would skip those on resume. Here the DataLoader iterates a copy of ``sampler``,
    and ``sampler`` itself advances one step per batch handed out: checkpoint ``sampler`` (its
    ``state_dict``) and the resumed run continues at the first batch the loop did not take.
    Stand-ins for bad samples (``skip_bad_samples``) are counted in ``bad_samples`` and logged.
    """

    def __init__(self, dataloader: DataLoader, sampler: TaskSampler) -> None:
        if not isinstance(dataloader.batch_sampler, TaskBatchSampler):
            raise TypeError("TrainLoader needs a DataLoader whose batch_sampler is a TaskBatchSampler")
        self.dataloader, self.sampler = dataloader, sampler
        self.bad_samples: list[str] = []

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[dict]:
        sampler = self.sampler
        if sampler.step >= len(sampler):  # finished epoch: roll over here, where the loop can see it
            sampler.set_epoch(sampler.epoch + 1)
        self.dataloader.batch_sampler.sampler = copy.copy(sampler)
        for batch in self.dataloader:
            sampler.step += 1
            for meta in batch["meta"]:
                for error in meta.get(BAD_SAMPLE_KEY, ()):
                    self.bad_samples.append(error)
                    logger.warning("skipped bad sample (%d so far): %s", len(self.bad_samples), error)
            yield batch


def build_train_loader(samples: Mapping[str, Sequence[Sample]], sampler: TaskSampler,
                       preprocessing: Preprocessing, config: LoaderConfig | None = None,
                       device: torch.device | str = "cpu", num_processes: int = 1,
                       augment: AugmentConfig | None = None) -> TrainLoader:
    """The training loader: augmented one-task batches in ``sampler``'s order, resized and
    normalised as ``preprocessing`` (the model's) says. The resized training set is built here,
    before the first step (in memory, or the missing entries of ``config.cache_dir``): an
    unreadable sample (without ``skip_bad_samples``) or an unwritable cache folder fails here."""
    config = config or LoaderConfig()
    workers = default_num_workers(num_processes) if config.num_workers is None else config.num_workers
    cache = _resized_samples(samples, preprocessing, config, workers)
    dataset = TrainDataset(samples, preprocessing, train=True, augment=augment, cache=cache,
                           skip_bad_samples=config.skip_bad_samples, augment_on=config.augment_on)
    pin = torch.device(device).type == "cuda" if config.pin_memory is None else config.pin_memory
    extra = ({"prefetch_factor": config.prefetch_factor, "persistent_workers": config.persistent_workers}
             if workers else {})
    dataloader = DataLoader(dataset, batch_sampler=TaskBatchSampler(sampler),
                            collate_fn=Collate(preprocessing, dataset.on_device), num_workers=workers, pin_memory=pin,
                            **extra)
    return TrainLoader(dataloader, sampler)


def _resized_samples(samples: Mapping[str, Sequence[Sample]], preprocessing: Preprocessing, config: LoaderConfig,
                     workers: int) -> ResizeCache | MemoryCache | None:
    """Where the dataset finds its samples already resized: the disk cache (missing entries built
    now, by ``workers`` processes), the memory cache when the set fits its budget, else nowhere."""
    size, mode = preprocessing.image_size, preprocessing.resize_mode
    if config.cache_dir:
        cache = ResizeCache(config.cache_dir, size, mode)
        entries = [entry_at(items, i) for items in samples.values() for i in range(len(items))]
        cache.build(entries, workers, progress=None, verify=False, skip_unreadable=config.skip_bad_samples)
        return cache
    needed = memory_cache_bytes(samples, size)
    if needed > config.memory_cache_bytes:
        logger.info("the resized training set (%.0f MB) exceeds memory_cache_bytes (%.0f MB): decoding each "
                    "sample at every use; a resize cache avoids that (`m2dino data cache`, --cache-dir)",
                    needed / 1e6, config.memory_cache_bytes / 1e6)
        return None
    cache = MemoryCache(samples, size, mode, workers, keep_errors=config.skip_bad_samples)
    logger.info("training set decoded and resized into memory: %.0f MB", cache.nbytes / 1e6)
    return cache


__all__ = ["LoaderConfig", "ResizeCache", "TrainDataset", "TrainLoader", "build_train_loader", "default_num_workers"]
