"""Evaluation: the benchmark's metrics, the submission format (write and read) and scoring.

Scoring needs numpy only; running a model over a root (`evaluate_fmc_root`, `evaluate_constant`,
`RootEvaluation`, from `.inference`) and the frozen-backbone linear probe (`.linear_probe`) need torch
and are imported on first use (PEP 562), so `m2dino score` never pays for importing torch.
"""

from importlib import import_module
from typing import TYPE_CHECKING

from .constant_baseline import CONSTANT_FITS, ConstantPredictor, fit_constant_predictor
from .ground_truth import GroundTruth, ground_truth_from_fmc
from .report import markdown_report
from .scoring.per_submission import score_submission, write_metrics
from .submission import SubmissionEntry, WrittenSubmission, prediction_mask_path, write_submission
from .submission_reader import InvalidPrediction, Submission, SubmissionFormatError, read_submission

__all__ = ["CONSTANT_FITS", "PROBE_CS", "PROBE_TRAIN_FRACTION", "ConstantPredictor", "GroundTruth",
           "InvalidPrediction", "ProbeData", "RootEvaluation", "Submission", "SubmissionEntry",
           "SubmissionFormatError", "WrittenSubmission", "build_backbone_model", "evaluate_constant",
           "evaluate_fmc_root", "extract", "fit_constant_predictor", "fit_probe", "ground_truth_from_fmc",
           "load_probe_data", "markdown_report", "prediction_mask_path", "read_submission", "score_submission",
           "write_metrics", "write_submission"]

if TYPE_CHECKING:
    from .inference import RootEvaluation, evaluate_constant, evaluate_fmc_root
    from .linear_probe import (
        PROBE_CS,
        PROBE_TRAIN_FRACTION,
        ProbeData,
        build_backbone_model,
        extract,
        fit_probe,
        load_probe_data,
    )

_LAZY = {**dict.fromkeys(("RootEvaluation", "evaluate_constant", "evaluate_fmc_root"), ".inference"),
         **dict.fromkeys(("PROBE_CS", "PROBE_TRAIN_FRACTION", "ProbeData", "build_backbone_model", "extract",
                          "fit_probe", "load_probe_data"), ".linear_probe")}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
