"""A run's training data and unlabelled pool, from its `DataSettings`."""

from __future__ import annotations

from ..data.image_list import read_image_list
from ..data.unlabeled import UnlabeledSource
from ..training.data_sources import TrainingData, load_training_data
from ..training.pretrain.sources import unlabeled_source
from .run_config import DataSettings


def load_data(settings: DataSettings, image_size: int, seed: int) -> TrainingData:
    """Every source merged, restricted to the selected tasks and images, at the configured fraction."""
    data = None
    for spec in settings.sources:
        tasks = settings.tasks if len(settings.sources) == 1 else None  # several sources: restrict after merging
        part = load_training_data(spec, tasks, image_size, seed, synthetic_per_task=settings.synthetic_per_task,
                                  synthetic_val_per_task=max(8, settings.synthetic_per_task // 3),
                                  val_data=settings.val)
        data = part if data is None else data.merge(part)
    if len(settings.sources) > 1 and settings.tasks:
        data = data.restrict(settings.tasks)
    if settings.train_images:
        images = read_image_list(settings.train_images)
        if not images:
            raise ValueError(f"--train-images {settings.train_images}: lists no images")
        data = data.only_images(images, f"--train-images {settings.train_images}")
    return data.fraction(settings.fraction, seed) if settings.fraction < 1 else data


def unlabeled_pool(settings: DataSettings, data: TrainingData) -> UnlabeledSource | None:
    """The unlabelled images of ``data.unlabeled`` (None for supervised training); ``rest`` is the
    training images that ``fraction`` / ``train_images`` left out of ``data``."""
    if settings.unlabeled is None:
        return None
    source = None
    for spec in settings.unlabeled:
        if spec == "rest":
            rest = [e for items in data.left_out.values() for e in items.items]
            if not rest:
                raise ValueError("--unlabeled rest: no training images were left out (use it with --data-fraction "
                                 "below 1 or --train-images)")
            part = UnlabeledSource.from_samples(rest, "training images left out of the labelled set")
        else:
            part = unlabeled_source(spec, "--unlabeled")
        source = part if source is None else source + part
    return source
