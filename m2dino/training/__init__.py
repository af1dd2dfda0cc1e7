"""Training: one Accelerate loop shared by the unified, grouped and task-specific recipes."""

from .data_sources import TrainingData, load_training_data
from .engine import NonFiniteLossError, Trainer, TrainResult
from .task_affinity import AffinityTracker, recommended_groups
from .train_config import TrainConfig
from .validation import InMemorySubmission, error_scales, normalised_task_scores, sample_ground_truth

__all__ = ["AffinityTracker", "InMemorySubmission", "NonFiniteLossError", "TrainConfig", "TrainResult", "Trainer",
           "TrainingData", "error_scales", "load_training_data", "normalised_task_scores", "recommended_groups",
           "sample_ground_truth"]
