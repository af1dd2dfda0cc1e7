"""Semi-supervised training: unlabelled images in the shared engine (``--semi``, ``--unlabeled``)."""

from .objective import SemiSupervision, pseudo_label_loss
from .semi_config import DEFAULTS, METHODS, SemiConfig, consistency_weight
from .unlabeled_batches import UnlabeledBatches
from .views import strong_view

__all__ = ["DEFAULTS", "METHODS", "SemiConfig", "SemiSupervision", "UnlabeledBatches", "consistency_weight",
           "pseudo_label_loss", "strong_view"]
