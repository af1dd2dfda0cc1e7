"""Endless, resumable batches of unlabelled images, preprocessed exactly as the model's input.

Each epoch is a seeded permutation of the source; the state (epoch, position) counts the batches
the training loop took, so a resumed run continues with the next unseen batch (as `TrainLoader`
does for labelled data). Images go through the model's own `Preprocessing` (its size and resize
policy), so an unlabelled source can never reach the model at another size or policy.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ...data.unlabeled import UnlabeledSource
from ...image import Preprocessing


class _Images(Dataset):
    def __init__(self, source: UnlabeledSource, preprocessing: Preprocessing) -> None:
        self.source, self.preprocessing = source, preprocessing

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> torch.Tensor:
        item = self.source[index]
        pixel_values, _ = self.preprocessing([item.image])
        return pixel_values[0]


class _EpochBatches(Sampler):
    """Index batches of a seeded permutation per epoch; ``step`` counts batches already taken."""

    def __init__(self, size: int, batch_size: int, seed: int) -> None:
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.epoch = self.step = 0

    def batches_per_epoch(self) -> int:
        return max(1, self.size // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
        if self.size < self.batch_size:  # a pool smaller than a batch: repeat it
            order = np.resize(order, self.batch_size)
        for b in range(self.step, self.batches_per_epoch()):
            yield order[b * self.batch_size:(b + 1) * self.batch_size].tolist()

    def __len__(self) -> int:
        return self.batches_per_epoch() - self.step


class UnlabeledBatches:
    def __init__(self, source: UnlabeledSource, preprocessing: Preprocessing, batch_size: int, seed: int,
                 num_workers: int = 0) -> None:
        if len(source) == 0:
            raise ValueError(f"--unlabeled: no images in {source.description}")
        self.sampler = _EpochBatches(len(source), batch_size, seed)
        self.dataset, self.num_workers = _Images(source, preprocessing), num_workers
        self._iterator: Iterator[torch.Tensor] | None = None

    def next(self) -> torch.Tensor:
        """The next batch (B×3×H×W, normalised); a new epoch starts when one ends."""
        if self._iterator is None:  # one loader per epoch, over a copy: workers run ahead of the count
            extra = {"prefetch_factor": 2} if self.num_workers else {}
            loader = DataLoader(self.dataset, batch_sampler=copy.copy(self.sampler), num_workers=self.num_workers,
                                **extra)
            self._iterator = iter(loader)
        try:
            batch = next(self._iterator)
        except StopIteration:
            self.sampler.epoch, self.sampler.step = self.sampler.epoch + 1, 0
            self._iterator = None
            return self.next()
        self.sampler.step += 1
        return batch

    def state_dict(self) -> dict:
        return {"epoch": self.sampler.epoch, "step": self.sampler.step}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.epoch, self.sampler.step = int(state["epoch"]), int(state["step"])
        self._iterator = None
