"""m2dino: multi-task ultrasound foundation models (DINOv3 + task-conditioned Mixture-of-Experts).

The model classes are imported on first use (PEP 562), so `m2dino score` and `m2dino data`, which
need neither torch nor timm, start without importing them. `list_pretrained()` names the model zoo's
released models and backbones (`m2dino models` shows them); it reads a JSON file, never torch.
"""

from importlib import import_module
from typing import TYPE_CHECKING

from .tasks import TaskSpec, TaskType, get_task, list_tasks, register_task

if TYPE_CHECKING:
    from .models import M2DINO, M2DINOConfig
    from .models.zoo import list_pretrained

__version__ = "0.1.0"
__all__ = ["M2DINO", "M2DINOConfig", "TaskSpec", "TaskType", "get_task", "list_pretrained", "list_tasks",
           "register_task"]
_LAZY = {"M2DINO": ".models", "M2DINOConfig": ".models", "list_pretrained": ".models.zoo"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
