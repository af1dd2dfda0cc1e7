"""The PyTorch side: a multi-task Dataset keyed by (task, index), a batch sampler on top of
`TaskSampler`, and the collate that builds the batch dict the model consumes.

Batch format (all samples of a batch share one task)::

    {"pixel_values": float32 B×3×H×W, normalised as the model's `Preprocessing` says
                     (augmenting on the device: uint8 B×H×W×3, resized, not yet augmented; B×H×W×1
                     when every image of the batch is gray, i.e. has three equal channels),
     "task": str,
     "targets": mask -> int64 B×H×W | class -> int64 B | boxes -> list of B float32 n_i×4 |
                keypoints -> float32 B×K×2 (x, y) | scalar -> float32 B   (model-input pixels),
     "geometry": list[ResizeGeometry], "original_size": list[(H, W)], "source": list[str],
     "meta": list[dict],
     "augment": only when augmenting on the device: each sample's drawn parameters as tensors
                (`device_augment.collate_parameters`), which `device_augment.augment_batch` applies}
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..image import Preprocessing, ResizeGeometry
from ..tasks import get_task
from .device_augment import DRAW_KEY, DrawParameters, collate_parameters
from .errors import DataError
from .sample import Sample
from .sampling import TaskSampler
from .transforms import AugmentConfig, SampleTransform, build_transforms

AUGMENT_PLACES = ("worker", "device")


class SampleKey(NamedTuple):
    """What the batch sampler hands the dataset: which sample, and the seed of its augmentation
    (derived from the sampler's seed, epoch and step, so a resumed run augments identically and
    DataLoader workers never share a random stream)."""

    task: str
    index: int
    seed: int | None = None


class MultiTaskDataset(Dataset):
    """Samples of several tasks, each with its own transform; ``dataset[(task, i)]`` or
    ``dataset[SampleKey(task, i, seed)]`` -> (transformed `Sample`, `ResizeGeometry`).
    ``preprocessing`` (the model's) sizes every transform and is what `Collate` normalises with.
    ``augment_on="device"`` (training only): resize and draw each sample's augmentation, leaving
    it to `device_augment.augment_batch` (``on_device`` says whether that is the case)."""

    def __init__(self, samples: Mapping[str, Sequence[Sample]] | Sequence[Sample], preprocessing: Preprocessing,
                 train: bool, augment: AugmentConfig | None = None, augment_on: str = "worker") -> None:
        if augment_on not in AUGMENT_PLACES:
            raise ValueError(f"augment_on must be one of {AUGMENT_PLACES}, got {augment_on!r}")
        if not isinstance(samples, Mapping):
            samples = _group_by_task(samples)
        if not samples:
            raise DataError("empty dataset: no samples given")
        self.samples = dict(samples)
        for task, items in self.samples.items():
            get_task(task)
            if len(items) == 0:
                raise DataError(f"empty dataset for task {task!r}")
        self.train, self.preprocessing = train, preprocessing
        self.transforms: dict[str, SampleTransform] = {
            task: build_transforms(task, preprocessing, train, augment) for task in self.samples}
        self.on_device = train and augment_on == "device"
        if self.on_device:  # same steps, same random stream: only their draws are taken here
            self.transforms = {task: SampleTransform(preprocessing, (DrawParameters(transform.steps),))
                               for task, transform in self.transforms.items()}

    @property
    def task_sizes(self) -> dict[str, int]:
        return {task: len(items) for task, items in self.samples.items()}

    def __len__(self) -> int:
        return sum(self.task_sizes.values())

    def __getitem__(self, key: SampleKey | tuple) -> tuple[Sample, ResizeGeometry]:
        key = SampleKey(*key)
        sample = self.samples[key.task][key.index]
        if sample.task != key.task:
            raise DataError(f"{sample.source}: sample of task {sample.task!r} filed under {key.task!r}")
        return self.transforms[key.task](sample, key.seed)


def _group_by_task(samples: Sequence[Sample]) -> dict[str, list[Sample]]:
    tasks = samples.tasks() if hasattr(samples, "tasks") else [s.task for s in samples]
    groups: dict[str, list[int]] = {}
    for i, task in enumerate(tasks):
        groups.setdefault(task, []).append(i)
    return {task: _Subset(samples, indices) for task, indices in groups.items()}


class _Subset(Sequence[Sample]):
    """A view of some positions of a (possibly lazy) sequence, without decoding it."""

    def __init__(self, samples: Sequence[Sample], indices: list[int]) -> None:
        self.samples, self.indices = samples, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Sample:
        return self.samples[self.indices[i]]


class TaskBatchSampler:
    """Turns a `TaskSampler`'s ``(task, indices)`` into lists of `SampleKey` for a DataLoader's
    ``batch_sampler``. ``augment_seeds=False`` leaves augmentation to fresh entropy instead."""

    def __init__(self, sampler: TaskSampler, augment_seeds: bool = True) -> None:
        self.sampler, self.augment_seeds = sampler, augment_seeds

    def __len__(self) -> int:
        return len(self.sampler)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[list[SampleKey]]:
        s = self.sampler
        for task, indices in s:
            if not self.augment_seeds:
                yield [SampleKey(task, i) for i in indices]
                continue
            base = [s.seed, s.epoch, s.step, s.rank, zlib.crc32(task.encode())]
            seeds = np.random.default_rng(base).integers(0, 2**63 - 1, size=len(indices))
            yield [SampleKey(task, i, int(seed)) for i, seed in zip(indices, seeds)]


class Collate:
    """``collate(items)`` -> the batch dict (see the module docstring), images normalised by
    ``preprocessing``, or, ``on_device``, uint8 with each sample's drawn augmentation (normalised
    after it, on the device). Picklable for workers."""

    def __init__(self, preprocessing: Preprocessing, on_device: bool = False) -> None:
        self.preprocessing, self.on_device = preprocessing, on_device

    def __call__(self, items: Sequence[tuple[Sample, ResizeGeometry]]) -> dict:
        if not items:
            raise DataError("cannot collate an empty batch")
        samples = [sample for sample, _ in items]
        tasks = {s.task for s in samples}
        if len(tasks) != 1:
            raise DataError(f"a batch must hold one task, got {sorted(tasks)}")
        sizes = {s.size for s in samples}
        if len(sizes) != 1:
            raise DataError(f"images of different sizes {sorted(sizes)} in one batch; resize them first")
        pixels = np.stack([s.image for s in samples])
        if self.on_device and (pixels[..., 1:] == pixels[..., :1]).all():
            pixels = np.ascontiguousarray(pixels[..., :1])  # gray: a third of the device's work
        batch = {"pixel_values": torch.from_numpy(pixels) if self.on_device else self.preprocessing.normalize(pixels),
                 "task": samples[0].task,
                 "targets": collate_targets(samples),
                 "geometry": [geometry for _, geometry in items],
                 "original_size": [s.original_size for s in samples],
                 "source": [s.source for s in samples],
                 "meta": [{k: v for k, v in s.meta.items() if k != DRAW_KEY} for s in samples]}
        if self.on_device:
            missing = [s.source for s in samples if DRAW_KEY not in s.meta]
            if missing:
                raise DataError(f"{missing[0]}: no drawn augmentation to collate for the device; build the dataset "
                                "with augment_on='device' and train=True")
            batch[DRAW_KEY] = collate_parameters([s.meta[DRAW_KEY] for s in samples])
        return batch


def collate_targets(samples: Sequence[Sample]) -> torch.Tensor | list[torch.Tensor]:
    """The labels of one task's samples as tensors (see the module docstring for each kind)."""
    batch = samples[0].spec.label_kind.collate([s.label for s in samples])
    return [torch.from_numpy(b) for b in batch] if isinstance(batch, list) else torch.from_numpy(batch)


def build_dataloader(dataset: MultiTaskDataset, sampler: TaskSampler, num_workers: int = 0, **kwargs) -> DataLoader:
    """A DataLoader yielding one-task batches in the sampler's order, normalised as ``dataset.preprocessing``."""
    batch_sampler = TaskBatchSampler(sampler, augment_seeds=dataset.train)
    collate = Collate(dataset.preprocessing, dataset.on_device)
    return DataLoader(dataset, batch_sampler=batch_sampler, collate_fn=collate, num_workers=num_workers, **kwargs)
