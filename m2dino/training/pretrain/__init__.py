"""DINOv3-style self-supervised pretraining of the backbone on unlabelled ultrasound (the `pretrain` recipe)."""

from .crops import CropConfig
from .export import BACKBONE_FILE
from .model import LossConfig, SelfDistillation
from .pretrain_config import PretrainConfig
from .trainer import PretrainTrainer, TeacherCollapseError

__all__ = ["BACKBONE_FILE", "CropConfig", "LossConfig", "PretrainConfig", "PretrainTrainer", "SelfDistillation",
           "TeacherCollapseError"]
