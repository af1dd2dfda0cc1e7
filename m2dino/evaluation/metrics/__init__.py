"""The benchmark's metrics on plain arrays (no files): segmentation, classification, detection, regression."""

from .classification import label_scores, majority_collapse, one_vs_rest_auc
from .detection import average_precision, box_iou, box_iou_matrix
from .regression import mean_radial_error, radial_errors
from .segmentation import (
    class_scores,
    dice,
    dice_per_class,
    hausdorff_distance,
    hausdorff_distance_95,
    hausdorff_per_class,
    normalized_surface_dice,
    resize_nearest,
    surface_scores,
)

__all__ = ["average_precision", "box_iou", "box_iou_matrix", "class_scores", "dice", "dice_per_class",
           "hausdorff_distance", "hausdorff_distance_95", "hausdorff_per_class", "label_scores",
           "majority_collapse", "mean_radial_error", "normalized_surface_dice", "one_vs_rest_auc", "radial_errors",
           "resize_nearest", "surface_scores"]
