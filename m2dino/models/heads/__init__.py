"""Task heads, one class per task type."""

from ...tasks import TaskSpec, TaskType
from .base import TaskHead
from .classification import ClassificationHead
from .detection import DetectionHead
from .regression import KeypointHead, ScalarHead
from .segmentation import SegmentationHead


def build_head(spec: TaskSpec, in_dim: int, features: int = 64) -> TaskHead:
    """The head for a task's type (a scalar-measurement regression task gets the scalar head)."""
    if spec.type is TaskType.SEGMENTATION:
        return SegmentationHead(in_dim, spec.num_classes, features)
    if spec.type is TaskType.CLASSIFICATION:
        return ClassificationHead(in_dim, spec.num_classes)
    if spec.type is TaskType.DETECTION:
        return DetectionHead(in_dim, spec.num_classes, features)
    if spec.is_scalar:
        return ScalarHead(in_dim)
    return KeypointHead(in_dim, spec.num_keypoints, features)


__all__ = ["ClassificationHead", "DetectionHead", "KeypointHead", "ScalarHead", "SegmentationHead", "TaskHead",
           "build_head"]
