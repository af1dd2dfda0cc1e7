"""`make_synthetic_samples`: the synthetic suite in memory, and `write_synthetic` on disk (FMC layout)."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ...limits import check_bound
from ...tasks import TaskType, get_task, list_tasks
from ..errors import DataError
from ..fmc import write_fmc
from ..sample import Sample
from . import tasks_chest_abdomen, tasks_obstetric, tasks_small_parts
from .physics import render
from .recipe import Recipe
from .shapes import Canvas

RECIPES: dict[str, Recipe] = {**tasks_obstetric.RECIPES, **tasks_small_parts.RECIPES, **tasks_chest_abdomen.RECIPES}
_SPLIT_CODES = {"train": 0, "val": 1, "test": 2}


def synthetic_tasks() -> list[str]:
    """Every task id the suite can generate (the 27 benchmark tasks and the adapters' extras)."""
    return list(RECIPES)


def make_synthetic_samples(tasks: list[str] | None = None, per_task: int = 8,
                           image_size: int | tuple[int, int] = 96, seed: int = 0,
                           split: str = "train") -> list[Sample]:
    """``per_task`` synthetic samples of each task (default: the 27 benchmark tasks), task by task.

    Deterministic in (seed, split, task, index): the same call gives the same images, and the
    splits are drawn from different streams. Classification tasks cycle through their classes
    (``index % num_classes``), so classes are balanced. ``image_size`` is (H, W) or one int.
    """
    return list(iter_synthetic_samples(tasks, per_task, image_size, seed, split))


def iter_synthetic_samples(tasks: list[str] | None = None, per_task: int = 8,
                           image_size: int | tuple[int, int] = 96, seed: int = 0,
                           split: str = "train") -> Iterator[Sample]:
    """`make_synthetic_samples` one sample at a time (what `write_synthetic` writes: memory stays at
    one image, whatever ``per_task``). The arguments are checked at the call, before any sample."""
    ids = [t.id for t in list_tasks()] if tasks is None else [get_task(t).id for t in tasks]
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    if per_task < 0 or min(height, width) < 16:
        raise ValueError(f"per_task must be >= 0 and image_size at least 16×16, got {per_task} and {image_size}")
    for side in (height, width):
        check_bound("image_size", side, "synthetic_side")
    missing = [task for task in ids if task not in RECIPES]
    if missing:
        raise DataError(f"no synthetic recipe for task(s) {', '.join(missing)}; available: {', '.join(RECIPES)}")
    return _generate(ids, per_task, (height, width), seed, split)


def _generate(ids: list[str], per_task: int, size: tuple[int, int], seed: int, split: str) -> Iterator[Sample]:
    split_code = _SPLIT_CODES.get(split, zlib.crc32(split.encode()))
    for task in ids:
        spec, recipe = get_task(task), RECIPES[task]
        task_code = zlib.crc32(task.encode())
        for index in range(per_task):
            rng = np.random.default_rng([seed, split_code, task_code, index])
            canvas = Canvas(*size, recipe.probe, rng)
            label = recipe.draw(canvas, index % spec.num_classes if spec.type is TaskType.CLASSIFICATION else 0)
            image = render(canvas, recipe.grain, recipe.attenuation, recipe.gain)
            name = f"{task}_{split}_{index:05d}"
            yield Sample(image, task, label, source=f"synthetic:{task}/{split}/{index}",
                         meta={"dataset": "synthetic", "split": split, "seed": seed, "name": name})


def write_synthetic(out: str | Path, per_task: int, image_size: int | tuple[int, int] = 128, seed: int = 0,
                    splits: tuple[str, ...] = ("train", "val"), tasks: list[str] | None = None,
                    overwrite: bool = False) -> dict[str, Path]:
    """The suite in the FMC layout, one root per split (``out/<split>/csv_files/...``)."""
    roots = {}
    for split in splits:
        samples = iter_synthetic_samples(tasks, per_task, image_size, seed, split)
        root = Path(out) / split
        write_fmc(samples, root, split_name=split, overwrite=overwrite, progress=True)
        roots[split] = root
    return roots
