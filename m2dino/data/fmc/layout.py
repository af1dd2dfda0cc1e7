"""The FMC_UIA on-disk layout as data: CSV columns, ``task_name`` spellings and folder names."""

from __future__ import annotations

from ...tasks import TaskSpec, TaskType

CSV_DIR = "csv_files"
COMMON_COLUMNS = ("task_id", "task_name", "num_classes", "image_path")
# Not in the challenge's layout either: a sample's extra metadata as JSON; readers ignore it.
META_COLUMN = "meta"

# As published: regression is the only capitalised one.
TASK_NAMES = {TaskType.SEGMENTATION: "segmentation", TaskType.CLASSIFICATION: "classification",
              TaskType.DETECTION: "detection", TaskType.REGRESSION: "Regression"}
TYPE_DIRS = {TaskType.SEGMENTATION: "Segmentation", TaskType.CLASSIFICATION: "Classification",
             TaskType.DETECTION: "Detection", TaskType.REGRESSION: "Regression"}
_NUMBER_WORDS = ("Zero", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine", "Ten")


def label_columns(spec: TaskSpec) -> tuple[str, ...]:
    """The columns a row of ``spec``'s task needs besides `COMMON_COLUMNS` (its label kind's)."""
    return spec.label_kind.csv_columns


def type_dir(spec: TaskSpec) -> str:
    """``Segmentation/Two`` (segmentation is split by class count), ``Detection``, ..."""
    base = TYPE_DIRS[spec.type]
    if spec.type is TaskType.SEGMENTATION:
        n = spec.num_classes
        return f"{base}/{_NUMBER_WORDS[n] if n < len(_NUMBER_WORDS) else n}"
    return base
