"""A release's numbers: the released model and the constant predictor, each scored on a test root.

The model goes through `m2dino evaluate`'s own function (`evaluation.inference.evaluate_fmc_root`),
on the model loaded back from the release folder: ``m2dino evaluate --model RELEASE --data ROOT
--tasks ...`` therefore reproduces the card's numbers exactly (tests/release/test_pipeline.py checks
it). The constant predictor's answers are written and scored by the same submission writer and
scorer (`evaluation.inference.evaluate_constant`), so both columns of the card's table are measured the
same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..evaluation.inference import evaluate_fmc_root
from ..models import M2DINO


def evaluate_model(model: M2DINO, root: str | Path, tasks: Sequence[str], out: Path, batch_size: int = 16,
                   progress: bool = True) -> dict:
    """``model`` over the FMC root ``root`` (only ``tasks``): OUT/submission, OUT/metrics.json and
    OUT/metrics.md, exactly as ``m2dino evaluate --model M --data ROOT --tasks TASKS --out OUT``."""
    return evaluate_fmc_root(model, root, out, tasks, batch_size, progress).metrics
