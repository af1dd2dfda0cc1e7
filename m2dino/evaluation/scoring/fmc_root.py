"""Scoring a submission folder against an FMC_UIA root (what ``m2dino score`` runs)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path

from ...data.fmc import read_fmc_index
from ..ground_truth import ground_truth_from_fmc
from ..submission_reader import read_submission
from .per_submission import score_submission


def score_fmc_submission(data_root: str | Path, pred_dir: str | Path, *, tasks: Collection[str] | None = None,
                         nsd_tolerance: float = 2.0, groups: Mapping[str, str] | None = None,
                         progress: bool = False) -> dict:
    """The metrics dict of the submission in ``pred_dir`` against the FMC layout at ``data_root``."""
    submission = read_submission(pred_dir)  # first: a malformed submission fails before any image is read
    records = read_fmc_index(data_root, tasks=list(tasks) if tasks is not None else None)
    return score_submission(ground_truth_from_fmc(records), submission, tasks=tasks,
                            nsd_tolerance=nsd_tolerance, groups=groups, progress=progress)
