"""Models: the DINOv3 backbone, the task-conditioned MoE, heads and the M2DINO model.

The typed predictions (numpy only) import eagerly; everything that needs torch or timm is imported
on first use (PEP 562), so code that only reads or writes predictions, such as scoring, never
pays for importing torch.
"""

from importlib import import_module
from typing import TYPE_CHECKING

from .predictions import (
    ClassificationPrediction,
    DetectionPrediction,
    KeypointPrediction,
    Prediction,
    ScalarPrediction,
    SegmentationPrediction,
)

if TYPE_CHECKING:
    from .backbone import BackboneOutput, DINOv3Backbone
    from .backbone_configs import BACKBONES, resolve_backbone
    from .model_config import M2DINOConfig
    from .moe import TaskMoE, TaskRouter, TaskRouting
    from .multitask import M2DINO
    from .outputs import (
        ClassificationOutput,
        DetectionOutput,
        KeypointOutput,
        MultiTaskOutput,
        ScalarOutput,
        SegmentationOutput,
        TaskOutput,
    )

_LAZY = {
    **dict.fromkeys(("BackboneOutput", "DINOv3Backbone"), ".backbone"),
    **dict.fromkeys(("BACKBONES", "resolve_backbone"), ".backbone_configs"),
    "M2DINOConfig": ".model_config", "M2DINO": ".multitask",
    **dict.fromkeys(("TaskMoE", "TaskRouter", "TaskRouting"), ".moe"),
    **dict.fromkeys(("ClassificationOutput", "DetectionOutput", "KeypointOutput", "MultiTaskOutput", "ScalarOutput",
                     "SegmentationOutput", "TaskOutput"), ".outputs"),
}
__all__ = ["BACKBONES", "BackboneOutput", "ClassificationOutput", "ClassificationPrediction", "DINOv3Backbone",
           "DetectionOutput", "DetectionPrediction", "KeypointOutput", "KeypointPrediction", "M2DINO", "M2DINOConfig",
           "MultiTaskOutput", "Prediction", "ScalarOutput", "ScalarPrediction", "SegmentationOutput",
           "SegmentationPrediction", "TaskMoE", "TaskOutput", "TaskRouter", "TaskRouting", "resolve_backbone"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
