"""m2dino: multi-task ultrasound foundation models (DINOv3 + task-conditioned Mixture-of-Experts)."""

from .models import M2DINO, M2DINOConfig
from .tasks import TaskSpec, TaskType, get_task, list_tasks, register_task

__version__ = "0.1.0"
__all__ = ["M2DINO", "M2DINOConfig", "TaskSpec", "TaskType", "get_task", "list_tasks", "register_task"]
