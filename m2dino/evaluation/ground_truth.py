"""The ground truth the scorer needs, as plain values (so scoring is testable without any files)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from ..tasks import TaskType


@dataclass(frozen=True)
class GroundTruth:
    """One benchmark row: ``label`` is the class index, the (4,) box or the K×2 keypoints;
    segmentation gives ``mask_path`` (the CSV's, it locates the prediction) and ``mask``, an array or a
    zero-argument loader called once when the row is scored (keeps thousands of masks off memory)."""

    task_id: str
    task_type: TaskType
    num_classes: int
    image_path: str
    label: int | np.ndarray | None = None
    mask_path: str | None = None
    mask: np.ndarray | Callable[[], np.ndarray] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "task_type", TaskType(self.task_type))

    def load_mask(self) -> np.ndarray:
        if self.mask is None:
            raise ValueError(f"{self.task_id} / {self.image_path}: segmentation ground truth without a mask")
        return np.asarray(self.mask() if callable(self.mask) else self.mask)


def ground_truth_from_fmc(records: Iterable) -> list[GroundTruth]:
    """Adapt `m2dino.data.fmc.FMCRecord`s (the CSV's ``task_name`` spells ``Regression`` with a capital R)."""
    return [GroundTruth(task_id=r.task_id, task_type=TaskType(r.task_type.lower()), num_classes=int(r.num_classes),
                        image_path=r.image_path, label=r.label, mask_path=r.mask_path,
                        mask=r.load_mask if r.mask_path is not None else None)
            for r in records]
