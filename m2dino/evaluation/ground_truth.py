"""The ground truth the scorer needs, as plain values (so scoring is testable without any files)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from ..tasks import KINDS, get_task


@dataclass(frozen=True)
class GroundTruth:
    """One benchmark row of a task whose labels are of ``kind`` (`m2dino.tasks.label_kinds`):
    ``label`` is the class index, the (4,) box, the K×2 keypoints or the measured value; a mask row
    gives ``mask_path`` (the CSV's, it locates the prediction) and ``mask``, an array or a
    zero-argument loader called once when the row is scored (keeps thousands of masks off memory).
    ``image_size`` (H, W) lets the strict scores charge a missing prediction the image diagonal."""

    task_id: str
    kind: str
    num_classes: int
    image_path: str
    label: int | float | np.ndarray | None = None
    mask_path: str | None = None
    mask: np.ndarray | Callable[[], np.ndarray] | None = None
    image_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.task_id} / {self.image_path}: label kind {self.kind!r}; expected one of "
                             f"{', '.join(KINDS)}")

    def load_mask(self) -> np.ndarray:
        if self.mask is None:
            raise ValueError(f"{self.task_id} / {self.image_path}: segmentation ground truth without a mask")
        return np.asarray(self.mask() if callable(self.mask) else self.mask)


def ground_truth_from_fmc(records: Iterable) -> list[GroundTruth]:
    """Adapt `m2dino.data.fmc.FMCRecord`s; each task's kind comes from the registry (a scalar
    measurement row is filed by the CSV under ``Regression`` like keypoints)."""
    return [GroundTruth(task_id=r.task_id, kind=get_task(r.task_id).label_kind.name, num_classes=int(r.num_classes),
                        image_path=r.image_path, label=r.label, mask_path=r.mask_path,
                        mask=r.load_mask if r.mask_path is not None else None, image_size=tuple(r.image_size))
            for r in records]
