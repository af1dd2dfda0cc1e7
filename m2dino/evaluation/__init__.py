"""Evaluation: the benchmark's metrics, the submission format (write and read) and scoring."""

from .constant_baseline import CONSTANT_FITS, ConstantPredictor, fit_constant_predictor
from .ground_truth import GroundTruth, ground_truth_from_fmc
from .inference import RootEvaluation, evaluate_constant, evaluate_fmc_root
from .report import markdown_report
from .scoring.per_submission import score_submission, write_metrics
from .submission import SubmissionEntry, WrittenSubmission, prediction_mask_path, write_submission
from .submission_reader import InvalidPrediction, Submission, SubmissionFormatError, read_submission

__all__ = ["CONSTANT_FITS", "ConstantPredictor", "GroundTruth", "InvalidPrediction", "RootEvaluation", "Submission",
           "SubmissionEntry", "SubmissionFormatError", "WrittenSubmission", "evaluate_constant", "evaluate_fmc_root",
           "fit_constant_predictor", "ground_truth_from_fmc",
           "markdown_report", "prediction_mask_path", "read_submission", "score_submission", "write_metrics",
           "write_submission"]
