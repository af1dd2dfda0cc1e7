"""Active learning: choose which unlabelled images to label next (`m2dino select`).

`select` runs the model over a pool once (predictive entropy per label kind, `uncertainty`; image
features, `features`) and hands the numbers to a strategy (`strategies`: random, entropy, SSL-EGAD,
core-set). The labelled images come from `labelled.read_labelled`.
"""

from .labelled import LabelledSet, read_labelled
from .selector import CSV_COLUMNS, Pick, SelectionConfig, check_selection, select, write_picks
from .strategies import STRATEGIES

__all__ = ["CSV_COLUMNS", "LabelledSet", "Pick", "STRATEGIES", "SelectionConfig", "check_selection", "read_labelled",
           "select", "write_picks"]
