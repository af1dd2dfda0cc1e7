"""Task heads, one class per label kind (`m2dino.tasks.label_kinds`)."""

from ...tasks import TaskSpec
from .base import PseudoLabels, TaskHead, pooled_features
from .classification import ClassificationHead
from .detection import DetectionHead
from .regression import KeypointHead, ScalarHead
from .segmentation import SegmentationHead

HEADS: dict[str, type[TaskHead]] = {head.label_kind: head for head in (
    SegmentationHead, ClassificationHead, DetectionHead, KeypointHead, ScalarHead)}


def build_head(spec: TaskSpec, in_dim: int, features: int = 64) -> TaskHead:
    """The head for the task's label kind."""
    return HEADS[spec.label_kind.name].from_spec(spec, in_dim, features)


__all__ = ["HEADS", "ClassificationHead", "DetectionHead", "KeypointHead", "PseudoLabels", "ScalarHead",
           "SegmentationHead", "TaskHead", "build_head", "pooled_features"]
