"""Task registry: the 27 FMC_UIA benchmark tasks, the adapters' extra tasks and the user's own."""

from .label_kinds import KINDS, LabelError, LabelKind, label_kind_of
from .registry import (
    UnknownTaskError,
    benchmark_groups,
    get_task,
    list_tasks,
    load_group_mapping,
    register_task,
    unregister_task,
)
from .spec import AUGMENTATIONS, GEOMETRIC_AUGMENTATIONS, PHOTOMETRIC_AUGMENTATIONS, TaskSpec
from .task_type import TaskType

__all__ = ["AUGMENTATIONS", "GEOMETRIC_AUGMENTATIONS", "KINDS", "LabelError", "LabelKind", "label_kind_of",
           "PHOTOMETRIC_AUGMENTATIONS", "TaskSpec", "TaskType",
           "UnknownTaskError", "benchmark_groups", "get_task", "list_tasks", "load_group_mapping",
           "register_task", "unregister_task"]
