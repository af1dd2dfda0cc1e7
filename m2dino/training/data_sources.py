"""Turn a ``--data`` argument into train/validation samples grouped by task.

``synthetic`` (the default): the in-memory synthetic suite; an FMC_UIA root folder; or
``NAME:PATH`` for a public dataset in its original layout (``hc18:../shared/data/hc18``).

Roots and adapters stay lazy: each task's samples are a `SampleCollection` of undecoded entries
(paths and index-time labels), decoded only when a DataLoader worker asks for them, so a root of
any size costs memory for its index only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data import Sample, SampleCollection
from ..data.collection import as_collection, image_key

VALIDATION_SPLITS = ("val", "validation", "test")


@dataclass
class TrainingData:
    train: dict[str, SampleCollection]
    val: dict[str, SampleCollection]
    description: str
    # Training samples that `fraction` / `only_images` set aside: the natural unlabelled pool of a
    # few-labels run (``--unlabeled rest``).
    left_out: dict[str, SampleCollection] = field(default_factory=dict)

    def restrict(self, tasks: Sequence[str]) -> "TrainingData":
        missing = [t for t in tasks if t not in self.train]
        if missing:
            raise ValueError(f"{self.description}: no training samples for tasks {missing}; "
                             f"it has {sorted(self.train)}")
        return TrainingData({t: self.train[t] for t in tasks}, {t: self.val[t] for t in tasks if t in self.val},
                            self.description, {t: self.left_out[t] for t in tasks if t in self.left_out})

    def fraction(self, fraction: float, seed: int = 0) -> "TrainingData":
        """A seeded subset of the training IMAGES (`image_key`: the source path, or the original
        image a build-public root names), the same for every task: tasks that share images
        (HC18's mask, box and axis; BUSI's mask and class) keep sharing them, so a joint model does
        not see more distinct images than a single-task one. Each task keeps at least 2 samples."""
        if not 0 < fraction <= 1:
            raise ValueError(f"data fraction must be in (0, 1], got {fraction}")
        if fraction == 1:
            return self
        entries = {task: as_collection(samples).items for task, samples in self.train.items()}  # not decoded
        images = sorted({image_key(entry) for items in entries.values() for entry in items})
        rng = np.random.default_rng(seed)
        kept = {images[i] for i in rng.permutation(len(images))[:max(1, round(len(images) * fraction))]}
        train, left_out = {}, {}
        for task, items in entries.items():
            chosen = [e for e in items if image_key(e) in kept]
            if len(chosen) < 2:  # a tiny task: top up deterministically rather than drop it
                chosen += [e for e in items if image_key(e) not in kept][:2 - len(chosen)]
            train[task] = SampleCollection(chosen)
            left_out[task] = _others(items, chosen)
        return TrainingData(train, self.val, f"{self.description} ({fraction:.0%} of training images)", left_out)

    def only_images(self, images: Sequence[str], where: str) -> "TrainingData":
        """Only the training samples of the listed images (paths, as `m2dino select` writes them); the
        rest become ``left_out``. A listed image that is not a training image is an error naming it."""
        wanted = {str(Path(p).resolve()): p for p in images}
        train, left_out, found = {}, {}, set()
        for task, samples in self.train.items():
            items = as_collection(samples).items
            chosen = [e for e in items if str(Path(e.source).resolve()) in wanted]
            found |= {str(Path(e.source).resolve()) for e in chosen}
            train[task] = SampleCollection(chosen)
            left_out[task] = _others(items, chosen)
        absent = [wanted[k] for k in wanted if k not in found]
        if absent:
            more = f" and {len(absent) - 5} more" if len(absent) > 5 else ""
            raise ValueError(f"{where}: {len(absent)} listed image(s) are not training images of "
                             f"{self.description}: {', '.join(absent[:5])}{more}")
        empty = [t for t, c in train.items() if len(c) == 0]
        if empty:
            raise ValueError(f"{where}: no listed image belongs to task(s) {empty}; train only the tasks you list "
                             "images for (--tasks)")
        return TrainingData(train, self.val, f"{self.description} ({len(wanted)} listed images)", left_out)

    def merge(self, other: "TrainingData") -> "TrainingData":
        """Two sources side by side (e.g. hc18 + usgra); a task present in both is an error."""
        both = sorted(set(self.train) & set(other.train))
        if both:
            raise ValueError(f"tasks {both} come from both {self.description} and {other.description}; "
                             "give each task one source")
        return TrainingData({**self.train, **other.train}, {**self.val, **other.val},
                            f"{self.description} + {other.description}", {**self.left_out, **other.left_out})


def _others(items: Sequence, chosen: Sequence) -> SampleCollection:
    """The items not in ``chosen`` (by identity: entries compare by value, labels are arrays)."""
    taken = {id(e) for e in chosen}
    return SampleCollection(e for e in items if id(e) not in taken)


def _by_task(samples: Sequence[Sample]) -> dict[str, SampleCollection]:
    """Samples grouped by task, still undecoded."""
    return as_collection(samples).by_task()


def _hold_out(samples: dict[str, SampleCollection], fraction: float, seed: int
              ) -> tuple[dict[str, SampleCollection], dict[str, SampleCollection]]:
    """Seeded per-task split for data that ships without a validation split."""
    rng = np.random.default_rng(seed)
    train, val = {}, {}
    for task, collection in samples.items():
        items = collection.items
        order = rng.permutation(len(items))
        n_val = max(1, round(len(items) * fraction)) if len(items) > 1 else 0
        val[task] = SampleCollection(items[i] for i in sorted(order[:n_val]))
        train[task] = SampleCollection(items[i] for i in sorted(order[n_val:]))
    return train, val


def load_training_data(spec: str, tasks: Sequence[str] | None = None, image_size: int | tuple[int, int] = 64,
                       seed: int = 0, synthetic_per_task: int = 48, synthetic_val_per_task: int = 16,
                       val_data: str | None = None, val_fraction: float = 0.2) -> TrainingData:
    if spec == "synthetic":
        from ..data.synthetic import make_synthetic_samples

        train = make_synthetic_samples(tasks, per_task=synthetic_per_task, image_size=image_size, seed=seed,
                                       split="train")
        val = make_synthetic_samples(tasks, per_task=synthetic_val_per_task, image_size=image_size, seed=seed,
                                     split="test")
        data = TrainingData(_by_task(train), _by_task(val), "synthetic 27-task suite")
    elif ":" in spec and not Path(spec).exists():
        from ..data.adapters import load_dataset

        name, path = spec.split(":", 1)
        splits = load_dataset(name, path)
        if "train" not in splits:
            raise ValueError(f"{spec}: the {name} adapter gave splits {sorted(splits)}; expected a 'train' split")
        val_name = next((s for s in VALIDATION_SPLITS if s in splits), None)
        if val_name is None:
            train, val = _hold_out(_by_task(splits["train"]), val_fraction, seed)
        else:
            train, val = _by_task(splits["train"]), _by_task(splits[val_name])
        data = TrainingData(train, val, f"{name} ({path})")
    else:
        from ..data import read_fmc

        root = Path(spec)
        if not root.is_dir():
            raise FileNotFoundError(f"--data {spec}: not 'synthetic', not NAME:PATH, and not an FMC_UIA folder")
        samples = _by_task(read_fmc(root, tasks=tasks, lazy=True))
        if val_data is not None:
            data = TrainingData(samples, _by_task(read_fmc(val_data, tasks=tasks, lazy=True)), f"FMC root {root}")
        else:
            train, val = _hold_out(samples, val_fraction, seed)
            data = TrainingData(train, val, f"FMC root {root} ({val_fraction:.0%} held out)")
    return data.restrict(list(tasks)) if tasks else data
