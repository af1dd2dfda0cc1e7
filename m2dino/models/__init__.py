"""Models: the DINOv3 backbone, the task-conditioned MoE, heads and the M2DINO model."""

from .backbone import BackboneOutput, DINOv3Backbone
from .backbone_configs import BACKBONES, resolve_backbone
from .config import M2DINOConfig
from .m2dino import M2DINO
from .moe import TaskMoE, TaskRouter, TaskRouting
from .outputs import (ClassificationOutput, DetectionOutput, KeypointOutput, MultiTaskOutput, ScalarOutput,
                      SegmentationOutput, TaskOutput)
from .predictions import (ClassificationPrediction, DetectionPrediction, KeypointPrediction, Prediction,
                          ScalarPrediction, SegmentationPrediction)

__all__ = ["BACKBONES", "BackboneOutput", "ClassificationOutput", "ClassificationPrediction", "DINOv3Backbone",
           "DetectionOutput", "DetectionPrediction", "KeypointOutput", "KeypointPrediction", "M2DINO",
           "M2DINOConfig", "MultiTaskOutput", "Prediction", "ScalarOutput", "ScalarPrediction",
           "SegmentationOutput", "SegmentationPrediction", "TaskMoE", "TaskOutput", "TaskRouter", "TaskRouting",
           "resolve_backbone"]
