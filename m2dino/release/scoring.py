"""A release's numbers: the released model and the constant predictor, each scored on a test root.

The model goes through `m2dino evaluate`'s own function (`evaluation.inference.evaluate_fmc_root`),
on the model loaded back from the release folder: ``m2dino evaluate --model RELEASE --data ROOT
--tasks ...`` therefore reproduces the card's numbers exactly (tests/release/test_pipeline.py checks
it). The constant predictor's answers are written and scored by the same submission writer and
scorer, so both columns of the card's table are measured the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..data.fmc import read_fmc_index
from ..evaluation import SubmissionEntry, fit_constant_predictor
from ..evaluation.inference import evaluate_fmc_root, score_entries
from ..image import ResizeGeometry
from ..models import M2DINO
from ..tasks import get_task


def evaluate_model(model: M2DINO, root: str | Path, tasks: Sequence[str], out: Path, batch_size: int = 16,
                   progress: bool = True) -> dict:
    """``model`` over the FMC root ``root`` (only ``tasks``): OUT/submission, OUT/metrics.json and
    OUT/metrics.md, exactly as ``m2dino evaluate --model M --data ROOT --tasks TASKS --out OUT``."""
    return evaluate_fmc_root(model, root, out, tasks, batch_size, progress).metrics


def evaluate_constant(training: dict, root: str | Path, tasks: Sequence[str], out: Path, grid: tuple[int, int],
                      progress: bool = True) -> dict:
    """The constant predictor of each task (fitted on ``training``: task → its training samples, on a
    letterboxed ``grid``) over the FMC root ``root``, written and scored like the model's submission."""
    records = read_fmc_index(root, tasks=list(tasks))
    predictors = {task: fit_constant_predictor(get_task(task), training[task], grid) for task in tasks}
    entries = [SubmissionEntry.for_record(r, predictors[r.task_id](
        ResizeGeometry.create(tuple(r.image_size), grid, "letterbox"))) for r in records]
    return score_entries(entries, root, out, tasks, progress).metrics
