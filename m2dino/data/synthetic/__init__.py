"""A synthetic ultrasound suite covering every benchmark task (and the adapters' extra tasks):
probe fields of view, speckle, attenuation and shadows over task-specific anatomy."""

from .generator import RECIPES, make_synthetic_samples, synthetic_tasks, write_synthetic

__all__ = ["RECIPES", "make_synthetic_samples", "synthetic_tasks", "write_synthetic"]
