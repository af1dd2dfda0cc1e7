"""Training: one Accelerate loop shared by the unified, grouped and task-specific recipes."""

from .train_config import TrainConfig
from .data_sources import TrainingData, load_training_data
from .engine import NonFiniteLossError, Trainer, TrainResult

__all__ = ["NonFiniteLossError", "TrainConfig", "TrainResult", "Trainer", "TrainingData", "load_training_data"]
