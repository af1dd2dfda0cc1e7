"""Pretraining batches: step ``s`` of rank ``r`` is a pure function of (seed, s, r), so a resumed run
draws exactly the batches an uninterrupted one would, with any number of DataLoader workers."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ...data.errors import DataError
from ...data.unlabeled import UnlabeledSource
from .crops import CropConfig, multi_crop
from .masking import random_masks


class PretrainBatches(Dataset):
    """``batches[step]`` -> {"global": 2B×3×G×G, "local": nB×3×L×L, "masks": 2B×P bool}, normalised with
    ``mean``/``std``, crop-major (all images' first crop, then all second crops, ...)."""

    def __init__(self, source: UnlabeledSource, crops: CropConfig, batch_size: int, patch_size: int,
                 mean: tuple[float, ...], std: tuple[float, ...], seed: int = 0, rank: int = 0,
                 mask_ratio: tuple[float, float] = (0.1, 0.5), mask_probability: float = 0.5) -> None:
        if len(source) == 0:
            raise DataError(f"{source.description}: no images to pretrain on")
        for size, name in ((crops.global_size, "global"), (crops.local_size, "local")):
            if size % patch_size:
                raise ValueError(f"{name} crop size {size} is not a multiple of the patch size {patch_size}")
        self.source, self.crops, self.batch_size = source, crops, batch_size
        self.grid = (crops.global_size // patch_size,) * 2
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)
        self.seed, self.rank = seed, rank
        self.mask_ratio, self.mask_probability = mask_ratio, mask_probability

    def __len__(self) -> int:  # indexed by step; the loader's sampler chooses which steps
        return 2**62

    def _normalise(self, crops: list[np.ndarray]) -> torch.Tensor:
        pixels = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255.0
        return (pixels - self.mean) / self.std

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, step, self.rank])
        indices = rng.integers(0, len(self.source), size=self.batch_size)
        globals_: list[list[np.ndarray]] = [[], []]
        locals_: list[list[np.ndarray]] = [[] for _ in range(self.crops.local_crops)]
        for index in indices:
            item = self.source[int(index)]
            global_crops, local_crops, _ = multi_crop(item.image, self.crops, rng, item.source)
            for k in range(2):
                globals_[k].append(global_crops[k])
            for k in range(self.crops.local_crops):
                locals_[k].append(local_crops[k])
        masks = random_masks(2 * self.batch_size, self.grid, rng, self.mask_ratio, self.mask_probability)
        local = [c for crops in locals_ for c in crops]
        return {"global": self._normalise(globals_[0] + globals_[1]),
                "local": self._normalise(local) if local else None,
                "masks": torch.from_numpy(masks)}


def _identity(batch: dict) -> dict:  # module level: picklable for worker processes
    return batch


class _Steps(torch.utils.data.Sampler):
    def __init__(self, start: int, stop: int) -> None:
        self.start, self.stop = start, stop

    def __iter__(self):
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return self.stop - self.start


def step_loader(batches: PretrainBatches, start: int, stop: int, num_workers: int = 0) -> DataLoader:
    """Steps ``start..stop-1`` in order. Its own generator, so creating it never draws from the global
    torch RNG (which a checkpoint saves): resume stays exact."""
    return DataLoader(batches, batch_size=None, sampler=_Steps(start, stop), num_workers=num_workers,
                      collate_fn=_identity, generator=torch.Generator().manual_seed(0),
                      persistent_workers=False)
