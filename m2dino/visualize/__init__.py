"""Seeing predictions: overlays on the scan (one per prediction type, or a panel of all tasks) and
the JSON a person or a program reads, all in the image's original pixels."""

from .export import prediction_to_dict, predictions_to_dict, rle_decode, rle_encode
from .overlay import describe, draw_prediction, keypoint_distance
from .panel import draw_panel
from .writer import PredictReport, write_predictions

__all__ = ["describe", "draw_panel", "draw_prediction", "keypoint_distance", "prediction_to_dict",
           "predictions_to_dict", "rle_decode", "rle_encode", "PredictReport", "write_predictions"]
