"""The training set decoded and resized once, before training, and held in memory that DataLoader
workers share: the default for a training set that fits `LoaderConfig.memory_cache_bytes`.

Without it, every step decodes each sample's files again (an 800×540 PNG, an annotation, an
ellipse fit for HC18) and resizes it to the model's input; a small dataset seen for many epochs
pays that again and again. Here it is paid once per sample, then a step only augments.

Memory: the pixels (images, and masks) live in ONE uint8 torch tensor. Forked DataLoader workers
(Linux's default) read it copy-on-write, and nothing writes to it, so its pages are never copied;
under the spawn / forkserver start methods torch pickles a tensor as a handle to shared memory,
so workers map the same pages instead of receiving a copy. (A numpy array would be copied into
every spawned worker; a list of per-sample arrays would have its pages copied by reference
counting in forked ones.) Other labels, sizes and meta are small Python objects per sample.
An image shared by several entries (one scan's four HC18 tasks) is stored once.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from ..image import ResizeGeometry
from ..tasks import get_task
from .cache_records import checksum, image_nbytes, is_pixel_label
from .collection import LazySample, SampleCollection
from .errors import DataError
from .sample import Sample
from .transforms import resize_sample


class _Slot(NamedTuple):
    image: int                # offset of the image's bytes in the buffer
    mask: int | None          # offset of the mask's bytes, or None when the label is not a mask
    label: Any                # the label when it is not a mask
    geometry: ResizeGeometry  # from the decoded image to the model's input
    original_size: tuple[int, int]
    source: str
    meta: dict


def memory_cache_bytes(samples: Mapping[str, Sequence[Sample]], image_size: tuple[int, int]) -> int:
    """What `MemoryCache` would hold for ``samples`` at ``image_size``, without decoding anything:
    one image per distinct image file (or per in-memory sample), one mask per entry of a task
    whose labels are stored as pixel grids."""
    pixels = image_size[0] * image_size[1]
    images: set = set()
    masks = 0
    for task, items in samples.items():
        per_mask = pixels if get_task(task).label_kind.stored_as_file else 0
        for index in range(len(items)):
            entry = entry_at(items, index)
            images.add(entry.files[0] if isinstance(entry, LazySample) and entry.files else id(entry))
            masks += per_mask
    return len(images) * image_nbytes(image_size) + masks


class MemoryCache:
    """``cache.get(task, index)`` -> (resized `Sample`, `ResizeGeometry`), for every entry of
    ``samples``, decoded and resized here (in ``workers`` processes when > 1). An entry that cannot
    be read stops the build naming its file, or with ``keep_errors`` is kept as its error, raised
    (a `DataError`) by ``get`` so a stand-in can replace it."""

    def __init__(self, samples: Mapping[str, Sequence[Sample]], image_size: tuple[int, int],
                 resize_mode: str = "letterbox", workers: int = 0, keep_errors: bool = False,
                 progress: bool | None = None) -> None:
        from tqdm.auto import tqdm

        self.image_size, self.resize_mode = (int(image_size[0]), int(image_size[1])), resize_mode
        keys = [(task, i) for task, items in samples.items() for i in range(len(items))]
        entries = [entry_at(samples[task], i) for task, i in keys]
        order = sorted(range(len(keys)), key=lambda k: _files(entries[k]))  # an image's tasks together
        jobs = ((self.image_size, resize_mode, entries[k]) for k in order)
        bar = tqdm(total=len(keys), desc="decoding the training set into memory", unit="sample",
                   disable=None if progress is None else not progress)
        self._slots: dict[str, list[_Slot | str]] = {task: [""] * len(items) for task, items in samples.items()}
        buffer = _Buffer(memory_cache_bytes(samples, self.image_size))
        if workers > 1 and len(keys) > 1:
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(workers) as pool:
                results = pool.map(_resize, *zip(*jobs), chunksize=16)
                self._store(results, [keys[k] for k in order], buffer, keep_errors, bar)
        else:
            self._store((_resize(*job) for job in jobs), [keys[k] for k in order], buffer, keep_errors, bar)
        bar.close()
        self.nbytes = buffer.used
        self._buffer = torch.from_numpy(buffer.array[:buffer.used].copy() if buffer.grown else buffer.array)

    def _store(self, results, keys: list[tuple[str, int]], buffer: "_Buffer", keep_errors: bool, bar) -> None:
        offsets: dict[str, int] = {}
        for (task, index), result in zip(keys, results):
            bar.update(1)
            if isinstance(result, str):
                if not keep_errors:
                    raise DataError(result)
                self._slots[task][index] = result
                continue
            sample, geometry = result
            image = np.ascontiguousarray(sample.image)
            digest = checksum(image)
            if digest not in offsets:
                offsets[digest] = buffer.append(image)
            mask = buffer.append(np.ascontiguousarray(sample.label)) if is_pixel_label(sample) else None
            self._slots[task][index] = _Slot(offsets[digest], mask, None if mask is not None else sample.label,
                                             geometry, sample.original_size, sample.source, sample.meta)

    def __repr__(self) -> str:
        return f"MemoryCache({sum(map(len, self._slots.values()))} samples, {self.nbytes} bytes)"

    def get(self, task: str, index: int) -> tuple[Sample, ResizeGeometry]:
        slot = self._slots[task][index]
        if isinstance(slot, str):
            raise DataError(slot)
        height, width = self.image_size
        image = self._bytes(slot.image, height * width * 3).reshape(height, width, 3)
        label = self._bytes(slot.mask, height * width).reshape(height, width) if slot.mask is not None \
            else copy.deepcopy(slot.label)  # copies: the stored sample stays as it was, whatever a step does
        return Sample(image, task, label, slot.original_size, slot.source, dict(slot.meta)), slot.geometry

    def _bytes(self, offset: int, count: int) -> np.ndarray:
        return self._buffer[offset:offset + count].numpy().copy()


class _Buffer:
    """An append-only uint8 array of a planned size; pages not written are never allocated."""

    def __init__(self, capacity: int) -> None:
        self.array, self.used, self.grown = np.empty(max(capacity, 1), np.uint8), 0, False

    def append(self, data: np.ndarray) -> int:
        flat = data.reshape(-1).view(np.uint8)
        if self.used + flat.size > self.array.size:  # more distinct images than files (rare): grow
            bigger = np.empty(max(2 * self.array.size, self.used + flat.size), np.uint8)
            bigger[:self.used] = self.array[:self.used]
            self.array, self.grown = bigger, True
        start, self.used = self.used, self.used + flat.size
        self.array[start:self.used] = flat
        return start


def _resize(image_size: tuple[int, int], resize_mode: str, entry: Sample | LazySample
            ) -> tuple[Sample, ResizeGeometry] | str:
    """``entry`` decoded and resized, or the message of why it cannot be read."""
    try:
        sample = entry.load() if isinstance(entry, LazySample) else entry
    except DataError as err:
        return str(err)
    except OSError as err:  # e.g. a file that turned unreadable under a lazy loader
        return f"{entry.source}: {err}"
    geometry = ResizeGeometry.create(sample.size, image_size, resize_mode)
    last = _last_resized.get("image")
    shared = last is not None and last[0] is sample.image and last[1] == geometry
    resized = resize_sample(sample, geometry, last[2] if shared else None)
    _last_resized["image"] = (sample.image, geometry, resized.image)
    return resized, geometry


# The last source image `_resize` resized (held, so its identity cannot pass to another array) and the
# result, per process: an adapter hands one scan's tasks the same decoded array (HC18: four tasks),
# and the build visits them one after the other, so each scan is resized once.
_last_resized: dict[str, tuple[np.ndarray, ResizeGeometry, np.ndarray]] = {}


def _files(entry: Sample | LazySample) -> tuple[str, ...]:
    return tuple(entry.files) if isinstance(entry, LazySample) else (entry.source,)


def entry_at(items: Sequence[Sample], index: int) -> Sample | LazySample:
    """Entry ``index`` of a task's samples as stored (a `LazySample` is not decoded)."""
    return items.entry(index) if isinstance(items, SampleCollection) else items[index]
