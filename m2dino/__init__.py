"""m2dino: multi-task ultrasound foundation models (DINOv3 + task-conditioned Mixture-of-Experts).

The model classes are imported on first use (PEP 562), so `m2dino score` and `m2dino data`, which
need neither torch nor timm, start without importing them.
"""

from importlib import import_module
from typing import TYPE_CHECKING

from .tasks import TaskSpec, TaskType, get_task, list_tasks, register_task

if TYPE_CHECKING:
    from .models import M2DINO, M2DINOConfig

__version__ = "0.1.0"
__all__ = ["M2DINO", "M2DINOConfig", "TaskSpec", "TaskType", "get_task", "list_tasks", "register_task"]
_LAZY = {"M2DINO": ".models", "M2DINOConfig": ".models"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
