"""`TaskType`: the benchmark's four task types, the names its files use."""

from __future__ import annotations

from enum import Enum


class TaskType(str, Enum):
    """A task's type as files name it: ``"type"`` in tasks.json and saved task specs, the FMC_UIA
    CSVs' ``task_name`` and folders. It cannot tell keypoints from a scalar measurement (both are
    ``"regression"``, the second with a ``scalar_unit``), so code asks the task's label kind
    (`TaskSpec.label_kind`) instead; `m2dino.tasks.label_kinds` maps the two vocabularies."""

    SEGMENTATION = "segmentation"
    CLASSIFICATION = "classification"
    DETECTION = "detection"
    REGRESSION = "regression"
